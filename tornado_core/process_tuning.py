"""What a long-running Tornado process (the API, a worker) sets once its startup is done.

Both settings belong to the whole process, so only a process's entry point calls
:func:`settle_long_running_process`, never a library function or a test.
"""

from __future__ import annotations

import gc
import sys

#: Seconds a thread holds the GIL before another may take it (Python's default is 0.005).
GIL_SWITCH_INTERVAL = 0.001


def settle_long_running_process() -> None:
    """Freeze what startup built and shorten the GIL's switch interval.

    * ``gc.freeze()``: the modules, settings and clients built at startup live as long as the
      process; full collections skip them. Unfrozen, a full collection walked them all: 90 ms and
      more on a busy two-core machine, every job or request in flight waiting behind it.
    * ``sys.setswitchinterval``: threads hand work to each other (the API's event loop and its
      commit threads; a worker's poll loop, job threads and completer). A thread woken while
      another runs Python waits for the switch interval each time, and every job of its batch with it.
    """
    gc.freeze()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
