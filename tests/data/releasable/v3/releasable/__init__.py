"""Version 3.0.0 of the demo.release task (broken: every job fails)."""

from tests.data.releasable_base import declare

__version__ = "3.0.0"

work = declare(__version__, broken=True)
