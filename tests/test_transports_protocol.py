"""The HTTP bridge below the application: what aiohttp's parser and protocol meet.

Raw bytes on a real socket, because a well-behaved client library can't send
most of these. Every answer is problem+json with a request id, quotes none of
the input, and no log line carries it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from proxy.http_access import loggable_path
from proxy.http_problems import retry_after_seconds
from proxy.http_protocol import RequestDataFilter, install_log_filters
from proxy.logs import RequestIdFilter
from proxy.testing import proxy_config
from tests.access_support import KID
from tests.conftest import clearkey_request

MARKER = "SECRETTOKEN"
BODY = clearkey_request(KID)


@dataclass
class RawAnswer:
    """An HTTP answer as it came off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    @property
    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"].startswith("application/problem+json")
        problem = json.loads(self.body)
        assert problem["status"] == self.status
        assert problem["request_id"] == self.headers["x-request-id"]
        return problem


async def exchange(port: int, data: bytes) -> RawAnswer:
    """Send ``data`` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), 30)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(lines[0].split()[1]), headers, body, raw)


def post(
    path: str = "/v1/licenses/clearkey",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = BODY,
    *,
    length: bool = True,
) -> bytes:
    """A raw HTTP/1.1 POST; ``Connection: close`` so the answer ends with EOF."""
    lines = [f"POST {path} HTTP/1.1", "Host: proxy"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def bearer(size: int) -> tuple[tuple[str, str], ...]:
    return (("Authorization", "Bearer " + (MARKER * (size // len(MARKER) + 1))[:size]),)


def assert_no_marker(answer: RawAnswer, caplog: pytest.LogCaptureFixture) -> None:
    assert MARKER.encode() not in answer.raw
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert MARKER not in text, record.name


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_a_token_just_over_the_limit_is_token_malformed(proxy_factory, all_logs):
    proxy = await proxy_factory(proxy_config({"auth": {"query_parameter": "token"}}))
    port = proxy.app.http_port
    for request in (
        post(headers=bearer(9 * 1024)),
        post(headers=bearer(20 * 1024)),  # under the raised parser limit: still our check
        post(path="/v1/licenses/clearkey?token=" + MARKER * 900),
    ):
        answer = await exchange(port, request)
        assert (answer.status, answer.problem["reason"]) == (401, "TOKEN_MALFORMED")
        assert_no_marker(answer, all_logs)


@pytest.mark.parametrize(
    ("request_bytes", "detail"),
    [
        (post(headers=bearer(100 * 1024)), "longer than"),
        (post(headers=(("X-Padding", MARKER * 10_000),)), "longer than"),
        (post(path="/v1/licenses/clearkey?token=" + MARKER * 10_000), "longer than"),
        (post(headers=(("Authorization", f"Bearer {MARKER}\x01x"),)), "not valid"),
        (post(path=f"/v1/licenses/clearkey?token={MARKER}\x7fx"), "not a valid URL"),
        (
            post(
                headers=(("Transfer-Encoding", "chunked"),),
                body=f"zz{MARKER}\r\nabc\r\n0\r\n\r\n".encode(),
                length=False,
            ),
            "not valid HTTP",
        ),
        (post(headers=tuple((f"X-{i}", MARKER) for i in range(300))), "not valid HTTP"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARKER.encode() + b"\r\n\r\n", ""),
    ],
    ids=[
        "100k-authorization",
        "100k-other-header",
        "100k-query",
        "control-char-header",
        "control-char-url",
        "broken-chunked",
        "too-many-headers",
        "tls-to-plain-port",
    ],
)
async def test_parser_errors_are_problem_json_quoting_nothing(
    proxy_factory, all_logs, request_bytes, detail
):
    proxy = await proxy_factory()
    answer = await exchange(proxy.app.http_port, request_bytes)
    problem = answer.problem
    assert (answer.status, problem["reason"]) == (400, "REQUEST_INVALID")
    assert detail in problem["detail"]
    assert_no_marker(answer, all_logs)
    assert not [r for r in all_logs.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", ["/v1/licenses/clearkey", "/v1/license:acquire"])
async def test_a_body_that_does_not_decode_is_request_invalid(
    proxy_factory, dev_token, all_logs, encoding, path
):
    proxy = await proxy_factory()
    headers = (("Content-Encoding", encoding), ("Authorization", f"Bearer {dev_token()}"))
    answer = await exchange(proxy.app.http_port, post(path, headers, MARKER.encode()))
    problem = answer.problem
    assert (answer.status, problem["reason"]) == (400, "REQUEST_INVALID")
    assert "could not be read" in problem["detail"]
    assert_no_marker(answer, all_logs)
    assert not [r for r in all_logs.records if r.levelno >= logging.WARNING]


async def test_a_body_that_decodes_is_served(proxy_factory, dev_token):
    proxy = await proxy_factory()
    headers = (("Content-Encoding", "gzip"), ("Authorization", f"Bearer {dev_token()}"))
    answer = await exchange(proxy.app.http_port, post(headers=headers, body=gzip.compress(BODY)))
    assert answer.status == 200


async def test_an_unexpected_error_is_internal_logged_once_with_the_request_id(
    proxy_factory, dev_token, all_logs
):
    config = proxy_config({"server": {"trusted_proxies": ["127.0.0.0/8"]}})
    proxy = await proxy_factory(config)

    async def broken(request: Any) -> Any:
        raise RuntimeError(f"a bug that mentions {MARKER}")

    proxy.pipeline.acquire = broken  # a bug in the core, not in a plugin
    all_logs.handler.addFilter(RequestIdFilter())  # as `license-proxy serve` logs
    headers = (("Authorization", f"Bearer {dev_token()}"), ("X-Request-Id", "caller-id-1"))
    answer = await exchange(proxy.app.http_port, post(headers=headers))
    problem = answer.problem
    assert (answer.status, problem["reason"]) == (500, "INTERNAL")
    assert problem["request_id"] == "caller-id-1"
    assert MARKER.encode() not in answer.raw
    errors = [r for r in all_logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "proxy.http"
    assert errors[0].request_id == "caller-id-1"


async def test_a_trickled_body_is_cut_off_with_408(proxy_factory, dev_token):
    proxy = await proxy_factory(proxy_config({"server": {"request_read_timeout": "0.2s"}}))
    head = post(headers=(("Authorization", f"Bearer {dev_token()}"),), body=b"")
    head = head.replace(b"Content-Length: 0", b"Content-Length: 100")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.http_port)
    try:
        writer.write(head + b"{")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), 30)  # a guard, not a measurement
    finally:
        writer.close()
    head_text, _, body = raw.partition(b"\r\n\r\n")
    assert head_text.startswith(b"HTTP/1.1 408")
    problem = json.loads(body)
    assert problem["reason"] == "REQUEST_INVALID"
    assert "did not arrive within 0.2 s" in problem["detail"]


async def test_trickled_headers_are_cut_off_by_the_idle_timeout(proxy_factory):
    proxy = await proxy_factory(proxy_config({"server": {"http_idle_timeout": "0.2s"}}))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.app.http_port)
    try:
        writer.write(b"POST /v1/licenses/clearkey HTTP/1.1\r\nHost: proxy\r\n")
        await writer.drain()
        # the headers never end: the server closes the connection (EOF), answering nothing
        assert await asyncio.wait_for(reader.read(-1), 30) == b""
    finally:
        writer.close()


async def test_the_access_log_writes_the_raw_path_without_query(proxy_factory, all_logs):
    proxy = await proxy_factory()
    forged = "/x%0A2026-01-01%20INFO%20proxy.pipeline%20license%20issued"
    request = f"GET {forged}?token={MARKER} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
    answer = await exchange(proxy.app.http_port, request.encode())
    assert answer.status == 404
    (line,) = [r.getMessage() for r in all_logs.records if r.name == "aiohttp.access"]
    assert forged in line and "\n" not in line and MARKER not in line


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("/v1/licenses/clearkey?token=x", "/v1/licenses/clearkey"),
        ("/a%0Ab", "/a%0Ab"),
        ("/a\nb c\x1b", "/a%0Ab%20c%1B"),
        ("/caf\u00e9#frag", "/caf%C3%A9"),
    ],
)
def test_loggable_path(raw, logged):
    assert loggable_path(raw) == logged


@pytest.mark.parametrize(("seconds", "header"), [(0.2, "1"), (1.0, "1"), (1.2, "2"), (59.01, "60")])
def test_retry_after_rounds_up(seconds, header):
    assert retry_after_seconds(seconds) == header


def test_aiohttp_server_logs_keep_no_exception_text(all_logs):
    install_log_filters()
    install_log_filters()  # once is enough; twice adds nothing
    logger = logging.getLogger("aiohttp.server")
    assert sum(isinstance(f, RequestDataFilter) for f in logger.filters) == 1
    try:
        raise ValueError(f"Got more than 16384 bytes when reading: b'Bearer {MARKER}'")
    except ValueError:
        logger.exception("Error handling request from %s", "192.0.2.1")
    (record,) = [r for r in all_logs.records if r.name == "aiohttp.server"]
    assert record.exc_info is None and record.exc_text is None
    assert "192.0.2.1" in record.getMessage() and "ValueError" in record.getMessage()
    assert MARKER not in all_logs.text


@pytest.mark.parametrize("key", ["request_read_timeout", "http_idle_timeout"])
def test_read_timeouts_must_be_positive(key):
    from proxy.builder import build_pipeline
    from proxy.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config({"server": {key: "0s"}}))
    assert (f"server.{key}", "must be more than 0") in raised.value.errors
