"""Version 2.0.0 of the demo.release task."""

from tests.data.releasable_base import declare

__version__ = "2.0.0"

work = declare(__version__)
