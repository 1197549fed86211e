"""Real players against a real proxy: the page servers and one call to play the test content.

A :class:`PageServer` serves the player page (``page/``), the pinned player builds from
``node_modules`` (installed by ``make test`` with ``npm ci``) and the ClearKey test stream
(``tests/data/cenc_content/shaka_dash_clearkey``) on its own loopback port: its origin is
never the proxy's, so every license request is cross-origin, as in production.

:func:`play` opens the page in a browser context, starts shaka-player or dash.js on the
stream with a proxy license URL, and returns what happened (:class:`PlayResult`).
Helpers for other tests (the session continuity work reuses them):

- ``play(..., drop_license_answers=1)`` drops the answer of the first license POST
  after the proxy sent it, so the player retries (a lost answer);
- :class:`LicenseLog` is an observer plugin counting issued and refused licenses.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from proxy import ProxyError, hookimpl
from proxy.challenge.pssh import COMMON_SYSTEM_ID
from proxy.challenge.samples import pssh_box
from tests.players.cdp import BrowserContext

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node_modules"
CONTENT = HERE.parent / "data" / "cenc_content" / "shaka_dash_clearkey"
#: The stream's one key (tests/data/README.md): not derivable from the development seed,
#: so test configs give it to the ClearKey backend inline.
KEY_ID = "4060a865-8878-4267-9cbf-91ae5bae1e72"
KEY = "fc35340837310cc0fb53de97e22a69e0"
PLAYER_FILES = {
    "shaka-player.compiled.js": NODE_MODULES / "shaka-player" / "dist" / "shaka-player.compiled.js",
    "dash.all.min.js": NODE_MODULES / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js",
}
PLAYERS = ("shaka", "dashjs")


def players_installed() -> bool:
    """True when ``npm ci`` has installed the pinned players."""
    return all(path.is_file() for path in PLAYER_FILES.values())


class PageServer:
    """The player pages, the players and the stream, on a loopback port of their own."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.origin = ""

    async def start(self) -> PageServer:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_static("/page/", HERE / "page")
        app.router.add_get("/content/{player}/dash.mpd", _manifest)
        app.router.add_get("/content/{player}/{name}", _segment)
        for name, path in PLAYER_FILES.items():
            app.router.add_get(f"/lib/{name}", _file(path))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.origin = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


def clearkey_manifest(player: str) -> str:
    """The vector's manifest with ClearKey signalled the way each player reads it.

    The vector names PlayReady and Widevine only, and a browser's ClearKey CDM reads key
    ids from a W3C Common PSSH alone (Chromium's AesDecryptor ignores other boxes), so
    neither player could ask for a ClearKey license from it. Packagers signal ClearKey
    in one of two ways, and each player reads one of them:

    - dash.js: the DASH-IF ClearKey ``ContentProtection`` (``e2719d58-...``), from whose
      ``default_KID`` it makes ``keyids`` init data (it hands a ``cenc:pssh`` found there
      to the CDM as ``keyids`` too, which the CDM refuses, and so does it with a Common
      PSSH element: it must see neither);
    - shaka-player: a Common PSSH ``ContentProtection`` (``1077efec-...``) with the box in
      ``cenc:pssh``, which it passes on as ``cenc`` init data.

    One element is added before the PlayReady one; the segments are served unchanged.
    """
    if player == "dashjs":
        element = (
            '<ContentProtection schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" '
            'value="ClearKey1.0"/>'
        )
    else:
        box = pssh_box(COMMON_SYSTEM_ID, key_ids=[uuid.UUID(KEY_ID).bytes])
        element = (
            '<ContentProtection schemeIdUri="urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b">'
            f"<cenc:pssh>{base64.b64encode(box).decode()}</cenc:pssh></ContentProtection>"
        )
    text = (CONTENT / "dash.mpd").read_text(encoding="utf-8")
    anchor = '<ContentProtection schemeIdUri="urn:uuid:9a04f079'
    if anchor not in text:
        raise RuntimeError("the vector's manifest changed: update clearkey_manifest")
    return text.replace(anchor, element + "\n      " + anchor, 1)


async def _manifest(request: web.Request) -> web.Response:
    player = request.match_info["player"]
    if player not in PLAYERS:
        raise web.HTTPNotFound()
    return web.Response(text=clearkey_manifest(player), content_type="application/dash+xml")


async def _segment(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in {path.name for path in CONTENT.iterdir()}:
        raise web.HTTPNotFound()
    return web.FileResponse(CONTENT / name)


def _file(path: Path) -> Any:
    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return serve


@dataclass
class PlayResult:
    """What a player did: frames shown, or the error it reported; the page's console."""

    played: bool
    frames: int = 0
    current_time: float = 0.0
    error: str | None = None
    console: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"played={self.played} frames={self.frames} error={self.error}"]
        return "\n".join(lines + self.console[-30:])


async def play(
    context: BrowserContext,
    page_server: PageServer,
    player: str,
    license_url: str,
    *,
    authorization: str | None = None,
    with_credentials: bool | None = None,
    cookie: str | None = None,
    frames: int = 10,
    license_attempts: int = 2,
    drop_license_answers: int = 0,
    within: float = 30.0,
) -> PlayResult:
    """Play the test stream with ``player`` (``shaka`` or ``dashjs``), licenses from
    ``license_url``.

    :param authorization: the license request's ``Authorization`` header.
    :param with_credentials: the player's credentials mode; None leaves its default
        (dash.js turns it on by itself when the request carries ``Authorization``).
    :param cookie: a ``document.cookie`` assignment made by the page first.
    :param license_attempts: shaka's license request attempts (its retry setting).
    :param drop_license_answers: lose the answers of this many license POSTs.
    :param within: seconds the player has to show frames (the page says why it did not).
    """
    page = await context.new_page()
    await page.goto(f"{page_server.origin}/page/{player}.html")
    dropped = (
        await page.drop_answers("*/v1/licenses/*", drop_license_answers)
        if drop_license_answers
        else []
    )
    options = {
        "player": player,
        "manifest": f"{page_server.origin}/content/{player}/dash.mpd",
        "licenseUrl": license_url,
        "authorization": authorization,
        "withCredentials": with_credentials,
        "cookie": cookie,
        "frames": frames,
        "licenseAttempts": license_attempts,
        "timeoutMs": int(within * 1000),
    }
    outcome = await page.evaluate(f"window.play({json.dumps(options)})", within=within + 10)
    return PlayResult(
        played=bool(outcome.get("played")),
        frames=int(outcome.get("frames") or 0),
        current_time=float(outcome.get("currentTime") or 0),
        error=outcome.get("error"),
        console=list(page.console),
        dropped=dropped,
    )


class LicenseLog:
    """An observer plugin: how many licenses were issued, and the reasons of refusals."""

    def __init__(self) -> None:
        self.issued = 0
        self.denied: list[str] = []

    @hookimpl
    def proxy_license_issued(self, ctx: Any, result: Any) -> None:
        """Count an issued license."""
        self.issued += 1

    @hookimpl
    def proxy_license_denied(self, ctx: Any, error: ProxyError) -> None:
        """Keep a refusal's reason."""
        self.denied.append(error.reason.value)


@dataclass
class ServedProxy:
    """A proxy for players: the running proxy, its license log and ClearKey license URL."""

    proxy: Any
    log: LicenseLog
    license_url: str


async def serve_proxy(proxy_factory: Any, config: dict[str, Any]) -> ServedProxy:
    """Start a proxy from ``config`` (through the ``proxy_factory`` fixture) with a
    :class:`LicenseLog` registered."""
    log = LicenseLog()
    proxy = await proxy_factory(config, plugins=[("license_log", log)])
    return ServedProxy(proxy, log, f"{proxy.http_url}/v1/licenses/clearkey")


def clearkey_backend() -> dict[str, Any]:
    """A ClearKey backend holding the stream's key (config overrides for ``proxy_config``)."""
    return {"backends": {"clearkey": {"vendor": "clearkey", "keys": {KEY_ID: f"hex:{KEY}"}}}}
