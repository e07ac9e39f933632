"""The HTTP API (tornado): enqueue, job status, health and the OpenAPI document.

The only package of the core that imports the ``tornado`` web library.
"""

from tornado_core.web.app import ApiApplication, make_app
from tornado_core.web.server import serve

__all__ = ["ApiApplication", "make_app", "serve"]
