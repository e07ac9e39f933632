"""Benchmarks of the Tornado core (not tests): ``python -m bench`` runs them all.

See ``bench/README.md``. Each module is runnable on its own, e.g.
``python -m bench.api_throughput``.
"""
