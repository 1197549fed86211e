"""Shared helpers for the project's own tests (plugin-author fixtures live in proxy.testing)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio

from proxy.encoding import b64url_encode

DATA = Path(__file__).parent / "data"

#: The key id of the W3C EME ClearKey examples (tests/data/clearkey).
W3C_KID = "LwVHf8JLtPrv2GUXFW2v_A"


def clearkey_request(*key_ids: bytes, session_type: str | None = "temporary") -> bytes:
    """A W3C ClearKey license request for ``key_ids``."""
    doc: dict[str, object] = {"kids": [b64url_encode(k) for k in key_ids]}
    if session_type is not None:
        doc["type"] = session_type
    return json.dumps(doc).encode()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for talking to proxies under test."""
    async with aiohttp.ClientSession() as session:
        yield session
