"""What every vendor emulator shares: the fault switch, the request log, fake licenses, serving.

An emulator is an aiohttp application that checks each request against the
vendor's documented format and answers the way the vendor does. Its
:class:`FaultSwitch` makes it misbehave on demand (slow, 5xx, connection
reset, garbage, huge or trickling body, the vendor's own refusal), so the
proxy's handling of each can be tested over real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from proxy.challenge.widevine import parse_widevine
from proxy.errors import ProxyError
from proxy.model import RequestType

#: Fault modes a switch understands.
FAULT_MODES = ("none", "slow", "error", "reset", "garbage", "huge", "drip", "reject")


@dataclass
class FaultSwitch:
    """How the emulator misbehaves; ``set()`` it from a test, ``clear()`` it after.

    :ivar mode: one of :data:`FAULT_MODES`.
    :ivar status: HTTP status for ``error`` (and for ``reject`` where the vendor
        uses one of several).
    :ivar delay: seconds for ``slow`` (before answering) and ``drip`` (between bytes).
    :ivar retry_after: a ``Retry-After`` value to send with ``error``.
    :ivar code: the vendor's own error code for ``reject``.
    :ivar size: body size for ``huge``.
    :ivar times: misbehave for this many requests only, then answer normally.
    """

    mode: str = "none"
    status: int = 503
    delay: float = 5.0
    retry_after: str | None = None
    code: str | None = None
    size: int = 8 * 1024 * 1024
    times: int | None = None

    def set(self, mode: str, **options: Any) -> FaultSwitch:
        """Switch to ``mode`` with ``options`` (the other fields)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        fresh = FaultSwitch(mode=mode, **options)
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
        return self

    def clear(self) -> None:
        """Answer normally again."""
        self.set("none")

    def take(self) -> str:
        """The mode for the request at hand (counting down ``times``)."""
        if self.mode == "none":
            return "none"
        if self.times is not None:
            if self.times <= 0:
                return "none"
            self.times -= 1
        return self.mode


@dataclass
class Received:
    """One request as the emulator saw it, with what it decoded from it."""

    path: str
    headers: CIMultiDict[str]
    query: dict[str, str]
    body: bytes
    decoded: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmulatorState:
    """An emulator's switch and logs.

    :ivar violations: each request that broke the vendor's documented format, in
        words (:func:`violation`); a test of an adapter asserts it stays empty.
    """

    fault: FaultSwitch = field(default_factory=FaultSwitch)
    received: list[Received] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def last(self) -> Received:
        """The most recent request."""
        return self.received[-1]


STATE = web.AppKey("emulator_state", EmulatorState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Rejector = Callable[[web.Request, FaultSwitch], web.StreamResponse]


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: the close sends a TCP reset, as a crashing server would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _faulty(
    request: web.Request, mode: str, switch: FaultSwitch
) -> web.StreamResponse | None:
    if mode == "error":
        headers = {"Retry-After": switch.retry_after} if switch.retry_after else {}
        return web.Response(status=switch.status, text="emulated outage", headers=headers)
    if mode == "reset":
        _abort(request)
        # The connection is gone; this answer is never written.
        return web.Response(status=500)
    if mode == "garbage":
        return web.Response(
            body=b"<html>" + os.urandom(48).hex().encode() + b"</html>",
            content_type="application/octet-stream",
        )
    if mode == "huge":
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        chunk = b"\x08\x02" + b"\x00" * (64 * 1024 - 2)
        sent = 0
        while sent < switch.size:
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response
    if mode == "drip":
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        for _ in range(600):
            await response.write(b"\x08")
            await asyncio.sleep(switch.delay)
        return response
    return None


def fault_middleware(reject: Rejector) -> Any:
    """The middleware that applies the switch before the emulator's own handler."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state = request.app[STATE]
        mode = state.fault.take()
        if mode == "slow":
            await asyncio.sleep(state.fault.delay)
        elif mode == "reject":
            await request.read()
            return reject(request, state.fault)
        elif mode != "none":
            await request.read()
            answer = await _faulty(request, mode, state.fault)
            if answer is not None:
                return answer
        return await handler(request)

    return middleware


def new_app(reject: Rejector) -> web.Application:
    """An emulator application with its state and fault middleware."""
    app = web.Application(middlewares=[fault_middleware(reject)], client_max_size=4 * 1024 * 1024)
    app[STATE] = EmulatorState()
    return app


async def record(request: web.Request, **decoded: Any) -> Received:
    """Log the request (body read) in the emulator's state."""
    entry = Received(
        path=request.path,
        headers=CIMultiDict(request.headers),
        query=dict(request.query),
        body=await request.read(),
        decoded=dict(decoded),
    )
    request.app[STATE].received.append(entry)
    return entry


def violation(request: web.Request, message: str) -> str:
    """Record that ``request`` broke the vendor's documented format (the emulator then
    answers with the vendor's error form); returns ``message`` for that answer."""
    request.app[STATE].violations.append(f"{request.method} {request.path}: {message}")
    return message


# -- fake licenses ---------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _facts(facts: dict[str, Any]) -> bytes:
    return json.dumps(facts, sort_keys=True, separators=(",", ":")).encode()


def widevine_license(facts: dict[str, Any]) -> bytes:
    """A SignedMessage of type LICENSE whose ``msg`` is the facts as JSON (not a real license)."""
    body = _facts(facts)
    return b"\x08\x02\x12" + _varint(len(body)) + body


SERVICE_CERTIFICATE = b"\x08\x05\x12\x1bemulated service certificate"


def fairplay_ckc(facts: dict[str, Any]) -> bytes:
    """Emulated CKC bytes carrying the facts."""
    return b"CKC1" + _facts(facts)


def playready_license(facts: dict[str, Any]) -> bytes:
    """A SOAP AcquireLicenseResponse whose License element holds the facts, base64."""
    blob = base64.b64encode(_facts(facts)).decode()
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<AcquireLicenseResponse xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols">'
        "<AcquireLicenseResult><Response><LicenseResponse><Version>1</Version><Licenses>"
        f"<License>{blob}</License></Licenses></LicenseResponse></Response>"
        "</AcquireLicenseResult></AcquireLicenseResponse></soap:Body></soap:Envelope>"
    ).encode()


def playready_fault(status_code: str, message: str) -> bytes:
    """A PlayReady SOAP fault as servers send it with HTTP 500."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>{message}</faultstring>"
        "<detail><Exception><StatusCode>"
        f"{status_code}</StatusCode></Exception></detail></soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


def license_for(drm: str, facts: dict[str, Any]) -> tuple[bytes, str]:
    """The emulated license for ``drm`` and its content type."""
    if drm == "playready":
        return playready_license(facts), "text/xml; charset=utf-8"
    if drm == "fairplay":
        return fairplay_ckc(facts), "application/octet-stream"
    return widevine_license(facts), "application/octet-stream"


def license_facts(drm: str, body: bytes) -> dict[str, Any]:
    """The facts an emulated license carries (for tests)."""
    if drm == "playready":
        start = body.index(b"<License>") + len(b"<License>")
        end = body.index(b"</License>")
        return json.loads(base64.b64decode(body[start:end]))
    if drm == "fairplay":
        return json.loads(body[4:])
    index = 3
    while body[index] & 0x80:
        index += 1
    return json.loads(body[index + 1 :])


def widevine_request_type(body: bytes) -> RequestType | None:
    """What kind of Widevine request ``body`` is, read as the proxy reads it (None when it
    is no Widevine request): emulators answer renewals and releases differently."""
    try:
        return parse_widevine(body).request_type
    except ProxyError:
        return None


# -- serving ---------------------------------------------------------------------------


@dataclass
class RunningEmulator:
    """An emulator serving on loopback."""

    app: web.Application
    runner: web.AppRunner
    url: str

    @property
    def state(self) -> EmulatorState:
        """Its switch and request log."""
        return self.app[STATE]

    @property
    def fault(self) -> FaultSwitch:
        """Its fault switch."""
        return self.app[STATE].fault

    async def stop(self) -> None:
        """Stop serving (in-flight slow answers are cut)."""
        await self.runner.cleanup()


async def start_emulator(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> RunningEmulator:
    """Serve ``app`` on ``host:port`` (an ephemeral port by default)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return RunningEmulator(app, runner, f"http://{host}:{bound}")


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[RunningEmulator]:
    """``async with serving(app) as emulator:`` serve on loopback for the block."""
    running = await start_emulator(app)
    try:
        yield running
    finally:
        await running.stop()
