"""Version 1.0.0 of the demo.release task."""

from tests.data.releasable_base import declare

__version__ = "1.0.0"

work = declare(__version__)
