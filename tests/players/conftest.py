"""Fixtures of the real-player tests: one headless Chromium for the whole session, an
isolated browser context per test, and the page servers (two origins)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.players.cdp import BrowserContext, Chromium, find_chromium
from tests.players.harness import PageServer, players_installed


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """The browser every player test shares (started once: about a second)."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium is not installed (make test installs it)")
    if not players_installed():
        pytest.skip("the players are not installed (make test runs npm ci in tests/players)")
    browser = Chromium(executable)
    try:
        yield browser
    finally:
        browser.close()


@pytest_asyncio.fixture
async def browser(chromium: Chromium) -> AsyncIterator[BrowserContext]:
    """A fresh browser context (its own cookies and cache) for one test."""
    async with BrowserContext.open(chromium.ws_url) as context:
        yield context


@pytest_asyncio.fixture
async def page_server() -> AsyncIterator[PageServer]:
    """The player pages on a loopback origin of their own (the proxy's is another)."""
    server = await PageServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def foreign_page_server() -> AsyncIterator[PageServer]:
    """The same pages on a third origin: a page the proxy's config does not allow."""
    server = await PageServer().start()
    try:
        yield server
    finally:
        await server.stop()
