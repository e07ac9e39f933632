"""SPED EFD ICMS/IPI: the layout registry and a streaming structural validator (our "mini-PVA").

Modules: ``layouts`` (one JSON file per ``COD_VER`` in ``layouts/``, read through
``importlib.resources``: records, fields, hierarchy, reconciliation rules), ``validator``
(``validate`` streams a file's lines once, in flat memory, and yields every ``Problem``;
``validate_file`` reads a file in binary) with its checks split over the ``checks_*`` modules,
and ``cli`` (``tornado sped validate FILE``).

The official PVA stays the last, manual step; this validator is the CI gate before it.
"""

__version__ = "0.1.0"
