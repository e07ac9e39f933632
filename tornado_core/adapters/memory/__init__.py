"""In-memory adapters of every port, for fast unit tests and ``tornado_core.toolchain.testing``.

Never used by a running API or worker.
"""
