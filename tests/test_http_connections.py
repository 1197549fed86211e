"""The HTTP listener against clients that hold connections: dripped headers, too many
connections from one address, a body cut off by a client that goes away. Real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from proxy.testing import proxy_config
from tests.conftest import clearkey_request

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
REQUEST_START = b"POST /v1/licenses/clearkey HTTP/1.1\r\nHost: proxy\r\n"


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer (read to the end of the connection)."""
    raw = await reader.read()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


async def _drip(writer: asyncio.StreamWriter, answer: asyncio.Task, seconds: float) -> None:
    """Send one header line every 0.1 s, for at most ``seconds``, until the server answers."""
    for index in range(int(seconds * 10)):
        if answer.done():
            return
        try:
            writer.write(f"X-Drip-{index}: a\r\n".encode())
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.wait([answer], timeout=0.1)


async def test_dripped_headers_are_cut_at_the_header_deadline(proxy_factory):
    # The idle timeout is far beyond the test; only the header deadline can end it.
    proxy = await proxy_factory(
        proxy_config({"server": {"header_timeout": 0.5, "http_idle_timeout": 600}})
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.http_port)
    try:
        writer.write(REQUEST_START)
        answer = asyncio.create_task(_answer(reader))
        await _drip(writer, answer, seconds=20)
        assert answer.done(), "the server let the headers drip on"
        status, headers, body = answer.result()
    finally:
        writer.close()
    assert status == 408
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["reason"] == "REQUEST_INVALID"
    assert problem["request_id"] == headers["x-request-id"]


async def test_an_idle_keep_alive_connection_outlives_the_header_deadline(proxy_factory, dev_token):
    proxy = await proxy_factory(proxy_config({"server": {"header_timeout": 0.3}}))
    body = clearkey_request(KID)
    request = (
        REQUEST_START
        + f"Authorization: Bearer {dev_token()}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.http_port)
    try:
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            assert b" 200 " in status_line
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            # Idle for three header deadlines: only the next request's headers are timed.
            await asyncio.sleep(1.0)
    finally:
        writer.close()


async def test_connections_over_the_per_client_cap_are_refused_with_429(proxy_factory):
    proxy = await proxy_factory(proxy_config({"server": {"max_connections_per_client": 3}}))
    port = proxy.app.http_port
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, headers, body = await asyncio.wait_for(_answer(reader), 30)
        writer.close()
        assert status == 429
        assert headers["retry-after"] == "1"
        assert json.loads(body)["reason"] == "RATE_LIMITED"
        # A connection given back makes room for another.
        held.pop()[1].close()
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
        status, _, _ = await asyncio.wait_for(_answer(reader), 30)
        writer.close()
        assert status == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_trusted_proxies_are_exempt_from_the_per_client_cap(proxy_factory):
    proxy = await proxy_factory(
        proxy_config(
            {"server": {"max_connections_per_client": 2, "trusted_proxies": ["127.0.0.1/32"]}}
        )
    )
    port = proxy.app.http_port
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    try:
        reader, writer = held[-1]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
        status, _, _ = await asyncio.wait_for(_answer(reader), 30)
        assert status == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_a_client_leaving_mid_body_is_no_error(proxy_factory, caplog):
    proxy = await proxy_factory()
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.app.http_port)
            writer.write(REQUEST_START + b"Content-Length: 1000\r\n\r\n" + b"0123456789")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
        for _ in range(100):
            if sum(r.name == "aiohttp.access" for r in caplog.records) >= 5:
                break
            await asyncio.sleep(0.05)
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == 5
    assert not any(" 500 " in line for line in access)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    assert not any(r.exc_info or r.exc_text for r in caplog.records)
