"""The signals a serving process answers: SIGTERM and SIGINT stop it, SIGHUP reloads it.

The proxy's own process (:class:`proxy.server.ProxyApp`) and the supervisor of worker
processes (:class:`proxy.supervisor.Supervisor`) answer them alike; each reload runs as
a task of its own, kept here until it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class ServingSignals:
    """Installs the handlers on the running loop; :meth:`remove` gives the signals back
    their default action (a second SIGTERM during the drain then ends the process)."""

    def __init__(self, stop: asyncio.Event, reload: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        self._reload = reload
        self.reloads: set[asyncio.Task[Any]] = set()
        """Reloads under way."""

    def install(self) -> None:
        """Answer SIGTERM and SIGINT by setting ``stop``, SIGHUP by starting a reload."""
        self._loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        self._loop.add_signal_handler(signal.SIGINT, self._stop.set)
        self._loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def remove(self) -> None:
        """Take the handlers away again."""
        for sig in _HANDLED:
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(sig)

    def _on_hup(self) -> None:
        task = self._loop.create_task(self._reload())
        self.reloads.add(task)
        task.add_done_callback(self.reloads.discard)


__all__ = ["ServingSignals"]
