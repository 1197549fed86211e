"""Headless Chromium driven over the Chrome DevTools Protocol, for the real-player tests.

One browser process serves the whole test session (:class:`Chromium`, started and
stopped by a session fixture); each test opens its own connection and an isolated
browser context (its own cookies and cache) in its own event loop
(:class:`BrowserContext`), so tests never see each other's state.

Only what the tests need is here: open a page, evaluate JavaScript (awaiting promises),
collect console output and page errors for failure messages, and interrupt responses
with the ``Fetch`` domain (:meth:`Page.drop_answers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

#: The flags every launch uses: headless, no sandbox (root in CI), and nothing that talks
#: to the network by itself or keeps state between runs.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
)
EXECUTABLES = ("/usr/bin/chromium", "chromium", "chromium-browser")


class CdpError(Exception):
    """A DevTools command failed, or the page threw."""


def find_chromium() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    for name in EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless Chromium process with a fresh profile, reachable over DevTools."""

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="players-chromium-")
        profile = Path(self._profile.name)
        # A file, not a pipe: nobody reads Chromium's chatter, and a full pipe would stall it.
        self._log_path = Path(self._profile.name + ".log")
        self._log = self._log_path.open("wb")
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile / 'data'}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        self.ws_url = self._wait_for_endpoint(profile / "data" / "DevToolsActivePort", 30.0)

    def _wait_for_endpoint(self, path: Path, timeout: float) -> str:
        """Chromium writes its port and browser path into the profile once it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise CdpError(f"chromium exited with {self.process.returncode}: {error[-2000:]}")
            with contextlib.suppress(OSError, ValueError):
                port, browser_path = path.read_text().split("\n")[:2]
                if port and browser_path:
                    return f"ws://127.0.0.1:{int(port)}{browser_path}"
            time.sleep(0.05)
        self.close()
        raise CdpError("chromium did not open its DevTools endpoint in time")

    def close(self) -> None:
        """Stop the browser and delete its profile."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._log_path.unlink(missing_ok=True)
        self._profile.cleanup()


@dataclass
class _Connection:
    """One DevTools WebSocket: commands matched to answers, events to listeners."""

    ws: aiohttp.ClientWebSocketResponse
    session: aiohttp.ClientSession
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _listeners: dict[tuple[str | None, str], list[Callable[[dict[str, Any]], None]]] = field(
        default_factory=dict
    )
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            key = (data.get("sessionId"), data.get("method", ""))
            for listener in list(self._listeners.get(key, ())):
                listener(data.get("params", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self.ws.send_str(json.dumps(message))
        answer = await future
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def listen(
        self, session: str | None, method: str, listener: Callable[[dict[str, Any]], None]
    ) -> None:
        self._listeners.setdefault((session, method), []).append(listener)

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.session.close()


class Page:
    """One tab of a browser context."""

    def __init__(self, connection: _Connection, session: str) -> None:
        self._connection = connection
        self.session = session
        self.console: list[str] = []
        self._tasks: set[asyncio.Future[dict[str, Any]]] = set()
        connection.listen(session, "Runtime.consoleAPICalled", self._on_console)
        connection.listen(session, "Runtime.exceptionThrown", self._on_exception)

    def _on_console(self, params: dict[str, Any]) -> None:
        parts = [str(a.get("value", a.get("description", ""))) for a in params.get("args", ())]
        self.console.append(f"{params.get('type')}: {' '.join(parts)}")

    def _on_exception(self, params: dict[str, Any]) -> None:
        details = params.get("exceptionDetails", {})
        text = details.get("exception", {}).get("description") or details.get("text")
        self.console.append(f"uncaught: {text}")

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A DevTools command to this page."""
        return await self._connection.send(method, params, session=self.session)

    async def goto(self, url: str, *, within: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        loaded = asyncio.get_running_loop().create_future()
        self._connection.listen(
            self.session,
            "Page.loadEventFired",
            lambda _: loaded.done() or loaded.set_result(None),
        )
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigating to {url}: {answer['errorText']}")
        async with asyncio.timeout(within):
            await loaded

    async def evaluate(self, expression: str, *, within: float = 60.0) -> Any:
        """The value of ``expression`` (a promise is awaited), as JSON."""
        async with asyncio.timeout(within):
            answer = await self.send(
                "Runtime.evaluate",
                {"expression": expression, "awaitPromise": True, "returnByValue": True},
            )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"the page threw: {text}")
        return answer.get("result", {}).get("value")

    async def drop_answers(self, url_pattern: str, count: int = 1) -> list[str]:
        """Drop the answers of the next ``count`` POSTs to ``url_pattern`` after the server
        sent them (the request reached the server; the player sees the connection close).
        Returns a list the URLs of the dropped answers are appended to."""
        dropped: list[str] = []

        def paused(params: dict[str, Any]) -> None:
            request = params["request"]
            if request["method"] == "POST" and len(dropped) < count:
                dropped.append(request["url"])
                command = ("Fetch.failRequest", {"errorReason": "ConnectionClosed"})
            else:
                command = ("Fetch.continueResponse", {})
            method, extra = command
            task = asyncio.ensure_future(
                self.send(method, {"requestId": params["requestId"], **extra})
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._connection.listen(self.session, "Fetch.requestPaused", paused)
        await self.send(
            "Fetch.enable", {"patterns": [{"urlPattern": url_pattern, "requestStage": "Response"}]}
        )
        return dropped


class BrowserContext:
    """An isolated browser context (cookies, cache, storage) on its own connection."""

    def __init__(self, connection: _Connection, context_id: str) -> None:
        self._connection = connection
        self.context_id = context_id

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, ws_url: str) -> AsyncIterator[BrowserContext]:
        """Connect to the browser and create a context; both go away on exit."""
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024)
        except BaseException:
            await session.close()
            raise
        connection = _Connection(ws, session)
        connection.start()
        try:
            created = await connection.send(
                "Target.createBrowserContext", {"disposeOnDetach": True}
            )
            context = cls(connection, created["browserContextId"])
            try:
                yield context
            finally:
                with contextlib.suppress(CdpError):
                    await connection.send(
                        "Target.disposeBrowserContext", {"browserContextId": context.context_id}
                    )
        finally:
            await connection.close()

    async def new_page(self) -> Page:
        """A blank tab with Runtime and Page events on."""
        target = await self._connection.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": self.context_id}
        )
        attached = await self._connection.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self._connection, attached["sessionId"])
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        return page
