"""Adapters, one subpackage per technology: ``aws/``, ``postgres/``, ``memory/`` implement the ports;
``runtimes/`` are where workers run (``RuntimePort``).

The composition root (``tornado_core/bootstrap.py``) picks the adapters a process runs on; the CLI
also drives the runtimes' machinery directly (the Docker engine, images, the supervisor).
See docs/architecture.md.
"""
