"""shaka-player and dash.js (pinned npm builds) in headless Chromium play the ClearKey test
stream with licenses from a real proxy, cross-origin: a Bearer token, dash.js's default
credentials mode, a token cookie, and a cookie from a page the config does not allow.

Playing means frames were decrypted and shown (the stream is encrypted from its first
frame: without a license none is)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.testing import proxy_config
from tests.players.harness import PageServer, clearkey_backend, play, serve_proxy

COOKIE = "lp_token"


def browser_config(*origins: str, credentials: bool = False, cookie: bool = False) -> dict:
    """The embedded default serving the stream's key, with CORS for ``origins``."""
    overrides: dict[str, Any] = {
        **clearkey_backend(),
        "server": {"cors": {"allow_origins": list(origins), "allow_credentials": credentials}},
    }
    if cookie:
        overrides["auth"] = {"cookie": COOKIE}
    return proxy_config(overrides)


async def test_shaka_plays_with_a_bearer_token_cross_origin(
    proxy_factory, browser, page_server: PageServer, dev_token
):
    served = await serve_proxy(proxy_factory, browser_config(page_server.origin))
    log, url = served.log, served.license_url
    result = await play(browser, page_server, "shaka", url, authorization=f"Bearer {dev_token()}")
    assert result.played, result
    assert log.issued >= 1 and not log.denied


@pytest.mark.parametrize("credentials", [False, True])
async def test_dashjs_with_its_default_settings_needs_credentials_mode(
    proxy_factory, browser, page_server: PageServer, dev_token, credentials
):
    """dash.js turns credentials mode on by itself for a request with an Authorization
    header: without ``allow_credentials`` the browser stops at the preflight and the
    license POST is never sent; with it, dash.js plays."""
    config = browser_config(page_server.origin, credentials=credentials)
    served = await serve_proxy(proxy_factory, config)
    log, url = served.log, served.license_url
    result = await play(browser, page_server, "dashjs", url, authorization=f"Bearer {dev_token()}")
    assert result.played is credentials, result
    assert log.issued == (1 if credentials else 0)


@pytest.mark.parametrize("player", ["shaka", "dashjs"])
async def test_a_token_cookie_plays_in_credentials_mode(
    proxy_factory, browser, page_server: PageServer, dev_token, player
):
    config = browser_config(page_server.origin, credentials=True, cookie=True)
    served = await serve_proxy(proxy_factory, config)
    log, url = served.log, served.license_url
    result = await play(
        browser,
        page_server,
        player,
        url,
        cookie=f"{COOKIE}={dev_token()}; path=/; SameSite=Lax",
        with_credentials=True,
    )
    assert result.played, result
    assert log.issued == 1 and not log.denied


async def test_a_cookie_sent_from_a_page_not_allowed_is_refused(
    proxy_factory,
    browser,
    page_server: PageServer,
    foreign_page_server: PageServer,
    dev_token,
):
    """The user's browser holds the token cookie (set by the allowed page); another page,
    same site but not allowed, makes the browser send it with a license request. shaka's
    ClearKey POST needs no preflight, so the request reaches the proxy: it is refused
    before anything is issued or spent."""
    config = browser_config(page_server.origin, credentials=True, cookie=True)
    config["access"] = {"replay": {"max_uses": 1}}
    served = await serve_proxy(proxy_factory, config)
    log, url = served.log, served.license_url
    cookie = f"{COOKIE}={dev_token({'jti': 'the-users-token'})}; path=/; SameSite=Lax"
    foreign = await play(
        browser, foreign_page_server, "shaka", url, cookie=cookie, with_credentials=True
    )
    assert not foreign.played, foreign
    assert log.denied and set(log.denied) == {"ORIGIN_NOT_ALLOWED"}
    assert log.issued == 0
    # Nothing was spent: the allowed page plays with the same single-use token.
    allowed = await play(browser, page_server, "shaka", url, cookie=cookie, with_credentials=True)
    assert allowed.played, allowed
    assert log.issued == 1


async def test_a_lost_license_answer_is_retried_by_the_player(
    proxy_factory, browser, page_server: PageServer, dev_token
):
    """The proxy issues the license, its answer is lost on the way (the connection
    closes), and shaka retries: the helper the renewal and retry tests build on."""
    served = await serve_proxy(proxy_factory, browser_config(page_server.origin))
    log, url = served.log, served.license_url
    result = await play(
        browser,
        page_server,
        "shaka",
        url,
        authorization=f"Bearer {dev_token()}",
        drop_license_answers=1,
        license_attempts=2,
    )
    assert result.played, result
    assert result.dropped == [url]
    assert log.issued == 2
