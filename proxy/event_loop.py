"""Which event loop serves: ``server.event_loop``.

``auto`` (the default) takes uvloop when it is installed (it is a dependency on
Linux and macOS) and the standard library's loop otherwise; ``asyncio`` and
``uvloop`` ask for one. uvloop runs the same code with less CPU per request on
both transports (bench/RESULTS.md, issue 17); grpc.aio works on it through the
same file-descriptor reader it uses on the standard loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]


def uvloop_available() -> bool:
    """True when uvloop can be imported here."""
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``choice`` names (None: the standard library's)."""
    if choice == "asyncio" or (choice == "auto" and not uvloop_available()):
        return None
    import uvloop  # an ImportError here is a config that check-config refused

    return uvloop.new_event_loop


def loop_name(choice: EventLoopChoice) -> str:
    """``uvloop`` or ``asyncio``: what ``choice`` serves with on this machine."""
    return "asyncio" if loop_factory(choice) is None else "uvloop"


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """``asyncio.run(main)`` on the loop ``choice`` names."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


__all__ = ["EventLoopChoice", "loop_factory", "loop_name", "run", "uvloop_available"]
