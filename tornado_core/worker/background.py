"""A helper of the worker loop whose thread runs between :meth:`start` and :meth:`close`."""

from __future__ import annotations

import threading


class BackgroundBatcher:
    """Base of the worker's batching helpers (acknowledgements, completions).

    Constructing one starts nothing; :meth:`start` runs :meth:`_loop` in a daemon thread, and
    :meth:`close` sets :attr:`_closed`, wakes the loop (which finishes what is pending, then
    returns) and waits for it. Subclasses guard their state with :attr:`_cond`.

    Args:
        thread_name: Name of the thread (seen in profiles and thread dumps).
        close_timeout: Longest wait for the loop to end on :meth:`close` (``None``: no limit).
    """

    def __init__(self, *, thread_name: str, close_timeout: float | None) -> None:
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._thread_name = thread_name
        self._close_timeout = close_timeout

    def start(self) -> None:
        """Start the thread."""
        with self._cond:
            self._closed = False
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Let the thread finish what is pending, then wait for it to end."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self._close_timeout)

    def _loop(self) -> None:
        raise NotImplementedError
