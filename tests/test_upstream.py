"""The upstream client against misbehaving emulators: timeouts, outages, retries, failover, circuit."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import grpc
import pytest

from plugins.vendors.axinom import emulator as axinom
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.dispatch import ServiceCertificateCache
from proxy.errors import ProxyError, Reason
from proxy.testing import FakeClock, proxy_config
from proxy.testing.emulator import SERVICE_CERTIFICATE, license_facts, start_emulator
from proxy.upstream import CircuitBreaker, CircuitSettings, CircuitState, retry_after_seconds
from proxy.vendors import UpstreamRequest, VendorLicense
from tests.test_vendor_integration import grpc_license, http_license

KID = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes
CHALLENGE = samples.widevine_license_request(key_ids=[KID])


@pytest.fixture
async def primary(vendor_sandbox):
    """A second Axinom emulator (same tenant keys) to stand as the failing primary backend."""
    tenant = vendor_sandbox.vendors["axinom"]
    import base64

    app = axinom.make_app(tenant.com_key_id, base64.b64encode(tenant.com_key).decode())
    emulator = await start_emulator(app)
    yield emulator
    await emulator.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(sandbox: Any, primary_base: str, *, failover: bool, **settings: Any) -> dict[str, Any]:
    """Backends ``primary`` (at ``primary_base``) and ``secondary``; one policy using them."""
    doc = proxy_config()
    doc["backends"]["primary"] = sandbox.backend(
        "axinom", urls=axinom.urls(primary_base), **settings
    )
    doc["backends"]["secondary"] = sandbox.backend("axinom")
    doc["policies"].append(
        {
            "name": "outage",
            "priority": 10,
            "match": {"claims": {"vendor": "outage"}},
            "backends": ["primary", "secondary"] if failover else ["primary"],
            "license": {"can_play": True},
        }
    )
    return doc


async def acquire(proxy: Any, dev_token: Any, clock: FakeClock | None = None):
    """One Widevine license request electing the ``outage`` policy (token minted at ``clock``)."""
    now = clock.time() if clock is not None else None
    token = dev_token({"sub": "alice", "vendor": "outage"}, now=now)
    return await grpc_license(proxy, token, "widevine", CHALLENGE)


def stats(proxy: Any, backend: str = "primary"):
    return proxy.pipeline.services.upstream.backend_stats(backend)


@pytest.mark.parametrize(
    ("mode", "options", "settings", "reason", "code"),
    [
        (
            "slow",
            {"delay": 5},
            {"timeout": "300ms"},
            "UPSTREAM_TIMEOUT",
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ),
        ("error", {"status": 500}, {}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("error", {"status": 502}, {}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("reset", {}, {}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("garbage", {}, {}, "UPSTREAM_BAD_RESPONSE", grpc.StatusCode.UNAVAILABLE),
        (
            "huge",
            {"size": 2 * 1024 * 1024},
            {"max_response_bytes": 1024 * 1024},
            "UPSTREAM_BAD_RESPONSE",
            grpc.StatusCode.UNAVAILABLE,
        ),
        (
            "drip",
            {"delay": 0.05},
            {"timeout": "500ms"},
            "UPSTREAM_TIMEOUT",
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ),
    ],
)
async def test_each_fault_gives_its_reason_code(
    mode, options, settings, reason, code, vendor_sandbox, primary, proxy_factory, dev_token
):
    primary.fault.set(mode, **options)
    proxy = await proxy_factory(config(vendor_sandbox, primary.url, failover=False, **settings))
    _, info, status = await acquire(proxy, dev_token)
    assert status is code
    assert info.reason == reason
    assert info.metadata["backend"] == "primary"


async def test_timeouts_and_resets_are_never_retried(
    vendor_sandbox, primary, proxy_factory, dev_token
):
    proxy = await proxy_factory(
        config(vendor_sandbox, primary.url, failover=False, retries=3, timeout="300ms")
    )
    primary.fault.set("slow", delay=5)
    _, info, _ = await acquire(proxy, dev_token)
    assert info.reason == "UPSTREAM_TIMEOUT"
    primary.fault.set("reset")
    _, info, _ = await acquire(proxy, dev_token)
    assert info.reason == "UPSTREAM_UNAVAILABLE"
    assert stats(proxy).attempts == 2
    assert stats(proxy).retries == 0


async def test_a_failed_connect_is_retried_then_fails_over(
    vendor_sandbox, proxy_factory, dev_token
):
    dead = f"http://127.0.0.1:{closed_port()}"
    proxy = await proxy_factory(config(vendor_sandbox, dead, failover=True, retries=2))
    response, info, status = await acquire(proxy, dev_token)
    assert status is grpc.StatusCode.OK, info
    assert response.backend == "secondary"
    assert stats(proxy).attempts == 3
    assert stats(proxy).retries == 2


async def test_503_with_a_short_retry_after_is_retried(
    vendor_sandbox, primary, proxy_factory, dev_token
):
    primary.fault.set("error", status=503, retry_after="0", times=1)
    proxy = await proxy_factory(config(vendor_sandbox, primary.url, failover=False))
    response, info, status = await acquire(proxy, dev_token)
    assert status is grpc.StatusCode.OK, info
    assert response.backend == "primary"
    assert stats(proxy).retries == 1


async def test_503_with_a_long_retry_after_is_answered_with_it(
    vendor_sandbox, primary, proxy_factory, dev_token, http
):
    primary.fault.set("error", status=503, retry_after="30")
    proxy = await proxy_factory(config(vendor_sandbox, primary.url, failover=False))
    token = dev_token({"sub": "alice", "vendor": "outage"})
    async with http.post(
        f"{proxy.http_url}/v1/licenses/widevine",
        data=CHALLENGE,
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 502
        assert response.headers["Retry-After"] == "30"
    assert stats(proxy).retries == 0


@pytest.mark.parametrize("mode", ["error", "reset", "garbage", "slow"])
async def test_failover_serves_from_the_second_backend(
    mode, vendor_sandbox, primary, proxy_factory, dev_token, http
):
    primary.fault.set(mode, delay=5)
    proxy = await proxy_factory(config(vendor_sandbox, primary.url, failover=True, timeout="300ms"))
    response, info, status = await acquire(proxy, dev_token)
    assert status is grpc.StatusCode.OK, info
    assert response.backend == "secondary"
    assert license_facts("widevine", response.license)["vendor"] == "axinom"
    token = dev_token({"sub": "alice", "vendor": "outage"})
    http_status, _, _, problem = await http_license(proxy, http, token, "widevine", CHALLENGE)
    assert http_status == 200, problem


async def test_a_vendor_rejection_is_never_retried_on_another_backend(
    vendor_sandbox, primary, proxy_factory, dev_token
):
    primary.fault.set("reject")
    proxy = await proxy_factory(config(vendor_sandbox, primary.url, failover=True, retries=3))
    before = len(vendor_sandbox["axinom"].state.received)
    _, info, status = await acquire(proxy, dev_token)
    assert status is grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "UPSTREAM_REJECTED"
    assert len(vendor_sandbox["axinom"].state.received) == before
    assert stats(proxy).attempts == 1


async def test_the_circuit_opens_then_recovers(vendor_sandbox, primary, proxy_factory, dev_token):
    clock = FakeClock()
    breaker = {"failure_threshold": 2, "reset_timeout": "30s"}
    proxy = await proxy_factory(
        config(vendor_sandbox, primary.url, failover=True, retries=0, circuit_breaker=breaker),
        clock=clock,
    )
    primary.fault.set("error", status=500)
    for _ in range(2):
        response, _, _ = await acquire(proxy, dev_token, clock)
        assert response.backend == "secondary"
    primary.fault.clear()
    response, _, _ = await acquire(proxy, dev_token, clock)
    assert response.backend == "secondary"
    assert stats(proxy).short_circuited == 1
    assert len(primary.state.received) == 0
    clock.advance(31)
    response, _, _ = await acquire(proxy, dev_token, clock)
    assert response.backend == "primary"
    response, _, _ = await acquire(proxy, dev_token, clock)
    assert response.backend == "primary"
    assert len(primary.state.received) == 2


async def test_a_failed_probe_opens_the_circuit_again(
    vendor_sandbox, primary, proxy_factory, dev_token
):
    clock = FakeClock()
    breaker = {"failure_threshold": 1, "reset_timeout": "10s"}
    proxy = await proxy_factory(
        config(vendor_sandbox, primary.url, failover=True, retries=0, circuit_breaker=breaker),
        clock=clock,
    )
    primary.fault.set("error", status=503)
    await acquire(proxy, dev_token, clock)
    clock.advance(11)
    await acquire(proxy, dev_token, clock)
    await acquire(proxy, dev_token, clock)
    assert stats(proxy).outages == 2
    assert stats(proxy).short_circuited == 1


async def test_the_grpc_deadline_bounds_the_vendor_call(
    vendor_sandbox, primary, proxy_factory, dev_token
):
    primary.fault.set("slow", delay=5)
    proxy = await proxy_factory(config(vendor_sandbox, primary.url, failover=False, timeout="30s"))
    token = dev_token({"sub": "alice", "vendor": "outage"})
    _, _, status = await grpc_license(proxy, token, "widevine", CHALLENGE, timeout=0.5)
    assert status is grpc.StatusCode.DEADLINE_EXCEEDED
    assert stats(proxy).attempts == 1


async def test_a_callers_short_deadline_is_no_verdict_on_the_backend(vendor_sandbox, primary):
    """Regression: timeouts caused by callers' short gRPC deadlines opened the circuit
    for every caller."""
    pipeline = build_pipeline(
        config(
            vendor_sandbox,
            primary.url,
            failover=False,
            timeout="10s",
            circuit_breaker={"failure_threshold": 2},
        )
    )
    client = pipeline.services.upstream
    backend = pipeline.backends["primary"]
    request = UpstreamRequest(url=axinom.urls(primary.url)["widevine"], body=CHALLENGE)
    primary.fault.set("slow", delay=1, times=3)
    try:
        for _ in range(3):
            with pytest.raises(ProxyError) as caught:
                await client.exchange(
                    backend,
                    request,
                    lambda response: response,
                    request_id="impatient",
                    deadline=time.monotonic() + 0.05,
                )
            assert caught.value.reason is Reason.UPSTREAM_TIMEOUT
            assert caught.value.metadata == {"backend": "primary", "deadline": "caller"}
        assert client.breaker(backend).state is CircuitState.CLOSED
        assert client.backend_stats("primary").outages == 0
        answer = await client.exchange(
            backend,
            request,
            lambda response: response.status,
            request_id="patient",
            deadline=time.monotonic() + 10,
        )
        assert answer == 400, "the patient caller reaches the backend (which wants a message)"
    finally:
        await client.close()


async def test_the_backends_own_timeout_still_counts_against_it(vendor_sandbox, primary):
    pipeline = build_pipeline(
        config(
            vendor_sandbox,
            primary.url,
            failover=False,
            timeout="100ms",
            circuit_breaker={"failure_threshold": 1},
        )
    )
    client = pipeline.services.upstream
    backend = pipeline.backends["primary"]
    request = UpstreamRequest(url=axinom.urls(primary.url)["widevine"], body=CHALLENGE)
    primary.fault.set("slow", delay=1, times=1)
    try:
        with pytest.raises(ProxyError) as caught:
            await client.exchange(
                backend, request, lambda r: r, request_id="r", deadline=time.monotonic() + 10
            )
        assert caught.value.reason is Reason.UPSTREAM_TIMEOUT
        assert "deadline" not in caught.value.metadata
        assert client.breaker(backend).state is CircuitState.OPEN
    finally:
        await client.close()


# -- the parts on their own ------------------------------------------------------------------


def test_circuit_breaker_states():
    breaker = CircuitBreaker("b", CircuitSettings(failure_threshold=2, reset_timeout=10))
    assert breaker.allow(0)
    breaker.failure(0)
    assert breaker.state is CircuitState.CLOSED
    breaker.failure(1)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow(5)
    assert breaker.allow(11)
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow(11), "one probe at a time"
    breaker.abandon()
    assert breaker.allow(12)
    breaker.success()
    assert breaker.state is CircuitState.CLOSED
    assert CircuitBreaker("x", CircuitSettings(enabled=False)).allow(0)


def test_retry_after_forms():
    assert retry_after_seconds({"Retry-After": "12"}) == 12
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 80 < retry_after_seconds({"Retry-After": later}) <= 90
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


async def test_concurrent_certificate_misses_share_one_fetch():
    clock = FakeClock()
    cache = ServiceCertificateCache(clock)
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> VendorLicense:
        nonlocal calls
        calls += 1
        await gate.wait()
        return VendorLicense(b"cert")

    tasks = [asyncio.create_task(cache.fetch("b", 60, fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    answers = await asyncio.gather(*tasks)
    assert calls == 1
    assert {a.vendor_metadata["service_certificate_cache"] for a in answers} == {"miss", "shared"}
    assert (await cache.fetch("b", 60, fetch)).vendor_metadata["service_certificate_cache"] == "hit"
    clock.advance(61)
    await cache.fetch("b", 60, fetch)
    assert calls == 2


async def test_a_failed_certificate_fetch_is_not_cached():
    cache = ServiceCertificateCache(FakeClock())

    async def failing() -> VendorLicense:
        raise ProxyError(Reason.UPSTREAM_UNAVAILABLE)

    with pytest.raises(ProxyError):
        await cache.fetch("b", 60, failing)
    assert cache.get("b") is None


async def test_a_short_deadline_on_the_first_certificate_request_does_not_fail_the_others():
    """Regression: the shared fetch ran under its first caller's deadline."""
    cache = ServiceCertificateCache(FakeClock())
    gate = asyncio.Event()
    calls = 0

    async def fetch() -> VendorLicense:
        nonlocal calls
        calls += 1
        await gate.wait()
        return VendorLicense(b"cert")

    with pytest.raises(ProxyError) as caught:
        await cache.fetch("b", 60, fetch, deadline=time.monotonic() + 0.01)
    assert caught.value.reason is Reason.UPSTREAM_TIMEOUT
    assert caught.value.metadata["deadline"] == "caller"
    patient = asyncio.create_task(cache.fetch("b", 60, fetch, deadline=time.monotonic() + 30))
    await asyncio.sleep(0)
    gate.set()
    answer = await patient
    assert answer.license == b"cert"
    assert answer.vendor_metadata["service_certificate_cache"] == "shared"
    assert calls == 1
    assert cache.get("b") is not None


async def test_a_cancelled_first_certificate_request_does_not_cancel_the_fetch():
    cache = ServiceCertificateCache(FakeClock())
    gate = asyncio.Event()

    async def fetch() -> VendorLicense:
        await gate.wait()
        return VendorLicense(b"cert")

    first = asyncio.create_task(cache.fetch("b", 60, fetch))
    second = asyncio.create_task(cache.fetch("b", 60, fetch))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert (await second).license == b"cert"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert cache.get("b").license == b"cert"


async def test_the_shared_certificate_fetch_is_bounded_by_the_backend_not_the_first_caller(
    vendor_sandbox, primary, proxy_factory, dev_token
):
    primary.fault.set("slow", delay=0.5, times=1)
    proxy = await proxy_factory(config(vendor_sandbox, primary.url, failover=False))
    token = dev_token({"sub": "alice", "vendor": "outage"})
    impatient = asyncio.create_task(
        grpc_license(proxy, token, "widevine", b"\x08\x04", timeout=0.1)
    )
    await asyncio.sleep(0.02)
    patient = asyncio.create_task(grpc_license(proxy, token, "widevine", b"\x08\x04", timeout=30))
    _, _, impatient_status = await impatient
    response, info, status = await patient
    assert impatient_status is grpc.StatusCode.DEADLINE_EXCEEDED
    assert status is grpc.StatusCode.OK, info
    assert response.license == SERVICE_CERTIFICATE
    assert len(primary.state.received) == 1
    assert stats(proxy).outages == 0


async def test_a_cookie_one_vendor_answer_sets_never_rides_with_the_next_call(vendor_sandbox):
    """Regression: the shared session kept vendors' cookies and sent one viewer's to the
    next viewer's request."""
    from aiohttp import web

    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.Response(body=b"license")
        response.set_cookie("viewer", "alice-session")
        return response

    app = web.Application()
    app.router.add_post("/license", answer)
    emulator = await start_emulator(app)
    pipeline = build_pipeline(config(vendor_sandbox, emulator.url, failover=False))
    client = pipeline.services.upstream
    # A host name: aiohttp's default jar ignores cookies from IP addresses, vendors have names.
    url = emulator.url.replace("127.0.0.1", "localhost")
    request = UpstreamRequest(url=f"{url}/license", body=CHALLENGE)
    try:
        for request_id in ("alice", "bob"):
            await client.exchange(
                pipeline.backends["primary"],
                request,
                lambda response: response.status,
                request_id=request_id,
            )
    finally:
        await client.close()
        await emulator.stop()
    assert seen == [None, None]
