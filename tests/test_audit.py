"""The decision log: one record per license decision on both transports, and never a secret."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc
from plugins.vendors.clearkey import derive_key
from proxy import AuditLog, ConfigError, Decision
from proxy.admin.actions import AdminAction, AdminActionKind
from proxy.audit import AuditSettings
from proxy.builder import build_pipeline
from proxy.encoding import b64url_encode
from proxy.logs import JsonFormatter, RequestIdFilter
from proxy.secrets import resolve_secret
from proxy.stages import STAGES
from proxy.testing import embedded_default_text, proxy_config
from proxy.testing.emulator import serving
from tests.conftest import clearkey_request
from tests.observability_support import AcmeVendor, acme_app, acme_config
from tests.test_admin import admin_config, admin_token
from tests.test_admin import call as admin_call

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
KID_UUID = str(uuid.UUID(bytes=KID))
DEV_SEED = resolve_secret(proxy_config()["backends"]["clearkey"]["key_seed"]).value
HOLD_PLUGIN = "tests.plugins.slow:Hold"
ROOT = Path(__file__).resolve().parent.parent


def audited(tmp_path: Path, **audit: Any) -> dict[str, Any]:
    """The embedded default with the decision log in ``tmp_path/decisions.jsonl``."""
    return proxy_config({"audit": {"file": str(tmp_path / "decisions.jsonl"), **audit}})


async def records_of(proxy: Any, tmp_path: Path) -> list[dict[str, Any]]:
    """Every record written so far to the test's decision-log file."""
    assert await asyncio.to_thread(proxy.pipeline.services.audit.flush, 30)
    path = tmp_path / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stream_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The decision-log records of the log stream, as the JSON log format writes them."""
    formatter = JsonFormatter()
    return [formatter.format(r) for r in caplog.records if r.name == "license_proxy.audit"]


def secrets_in(token: str, challenge: bytes, license_bytes: bytes) -> list[str]:
    """What must never appear in a sink: the token and its parts, the key, challenge, license."""
    key = derive_key(DEV_SEED, KID)
    _header, payload, signature = token.split(".")
    return [
        token,
        payload,
        signature,
        b64url_encode(key),
        base64.b64encode(key).decode(),
        key.hex(),
        challenge.decode(),
        b64url_encode(challenge),
        license_bytes.decode(),
        json.loads(license_bytes)["keys"][0]["k"],
    ]


async def acquire_http(proxy: Any, http: Any, token: str, challenge: bytes, **headers: str) -> Any:
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=challenge,
        headers={"Authorization": f"Bearer {token}", **headers},
    ) as response:
        return response.status, response.headers["X-Request-Id"], await response.read()


async def test_every_decision_on_both_transports_is_one_record_with_no_secret(
    proxy_factory, http, dev_token, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    config = audited(tmp_path)
    config["server"]["trusted_proxies"] = ["127.0.0.0/8"]  # who may ask for a dry run
    proxy = await proxy_factory(config)
    token = dev_token({"sub": "viewer-7"})
    challenge = clearkey_request(KID)
    status, http_id, license_bytes = await acquire_http(proxy, http, token, challenge)
    assert status == 200
    grpc_answer = await proxy.stub().AcquireLicense(
        pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_CLEARKEY,
            challenge=challenge,
            token=token,
            content_id="movie-1",
        )
    )
    dry = await proxy.stub().AcquireLicense(
        pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=challenge, token=token, dry_run=True
        )
    )
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    denied_status, denied_id, _ = await acquire_http(proxy, http, forged, challenge)
    assert denied_status == 401
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await proxy.stub().AcquireLicense(
            pb.AcquireLicenseRequest(drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=challenge)
        )
    refused_id = dict(refused.value.trailing_metadata())["x-request-id"]

    records = await records_of(proxy, tmp_path)
    by_id = {r["request_id"]: r for r in records}
    assert len(records) == len(by_id) == 5
    issued_http = by_id[http_id]
    assert issued_http["type"] == "license_decision"
    assert issued_http["outcome"] == "issued"
    assert issued_http["transport"] == "http"
    assert issued_http["client_address"] == "127.0.0.1"
    assert issued_http["drm"] == "clearkey" and issued_http["request_type"] == "new"
    assert issued_http["key_ids"] == [KID_UUID]
    assert issued_http["subject"] == "viewer-7"
    assert issued_http["issuer"] == "license-proxy-dev"
    assert issued_http["policy"] == "default"
    assert issued_http["backend"] == "clearkey" and issued_http["vendor"] == "clearkey"
    assert "reason" not in issued_http
    assert set(issued_http["latency_us"]) == {*STAGES, "total"}
    assert all(ms >= 0 for ms in issued_http["latency_us"].values())
    assert issued_http["time"].endswith("Z")

    issued_grpc = by_id[grpc_answer.request_id]
    assert issued_grpc["transport"] == "grpc" and issued_grpc["outcome"] == "issued"
    assert issued_grpc["content_id"] == "movie-1"
    dry_run = by_id[dry.request_id]
    assert dry_run["outcome"] == "dry_run" and dry_run["backend"] == "clearkey"
    assert "issue" not in dry_run["latency_us"]  # no vendor was called

    forged_record = by_id[denied_id]
    assert forged_record["outcome"] == "denied"
    assert forged_record["reason"] == "TOKEN_SIGNATURE_INVALID"
    assert forged_record["stage"] == "authenticate"
    assert "subject" not in forged_record and "policy" not in forged_record
    assert set(forged_record["latency_us"]) == {"inspect", "authenticate", "total"}
    missing = by_id[refused_id]
    assert missing["transport"] == "grpc" and missing["reason"] == "TOKEN_MISSING"

    # The same records reached the log stream, once each.
    lines = stream_lines(caplog)
    assert len(lines) == 5
    streamed = [json.loads(line) for line in lines]
    assert {s["request_id"] for s in streamed} == set(by_id)
    assert all(s["audit"] == by_id[s["request_id"]] for s in streamed)
    assert all(s["message"] == "license_decision" for s in streamed)

    written = (tmp_path / "decisions.jsonl").read_text() + "\n".join(lines)
    for secret in [*secrets_in(token, challenge, license_bytes), forged]:
        assert secret not in written


async def test_a_cancelled_request_is_recorded_as_cancelled(proxy_factory, dev_token, tmp_path):
    config = audited(tmp_path)
    config["plugins"] = {"modules": [HOLD_PLUGIN]}
    proxy = await proxy_factory(config)
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=dev_token()
    )
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await proxy.stub().AcquireLicense(request, metadata=(("x-hold", "30"),), timeout=0.3)
    assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # The server side hears of the cancellation on its own time: wait for the record.
    for _ in range(600):
        records = await records_of(proxy, tmp_path)
        if records:
            break
        await asyncio.sleep(0.05)
    [record] = records
    assert record["outcome"] == "cancelled"
    assert record["stage"] == "authorize"
    assert record["reason"] == "UPSTREAM_TIMEOUT"


async def test_the_subject_is_hashed_with_the_configured_key(
    proxy_factory, http, dev_token, tmp_path, monkeypatch
):
    monkeypatch.setenv("AUDIT_KEY", "pepper-of-the-test")
    proxy = await proxy_factory(audited(tmp_path, subject="hash", subject_key="env:AUDIT_KEY"))
    token = dev_token({"sub": "viewer@example.com"})
    await acquire_http(proxy, http, token, clearkey_request(KID))
    proxy.pipeline.services.audit.admin(
        AdminAction(
            time=1.0e9,
            request_id="adm-0",
            action=AdminActionKind.REVOKE,
            operator="token:ops",
            client_address="127.0.0.1",
            target={"subject": "viewer@example.com"},
        )
    )
    decision, admin = await records_of(proxy, tmp_path)
    expected = hmac.new(b"pepper-of-the-test", b"viewer@example.com", hashlib.sha256).hexdigest()
    assert decision["subject_hash"] == expected and "subject" not in decision
    assert admin["target"] == {"subject_hash": expected}
    assert "viewer@example.com" not in (tmp_path / "decisions.jsonl").read_text()


async def test_the_subject_can_be_left_out(proxy_factory, http, dev_token, tmp_path):
    proxy = await proxy_factory(audited(tmp_path, subject="omit"))
    await acquire_http(proxy, http, dev_token({"sub": "viewer-9"}), clearkey_request(KID))
    [record] = await records_of(proxy, tmp_path)
    assert "subject" not in record and "subject_hash" not in record
    assert record["issuer"] == "license-proxy-dev"


async def test_admin_api_calls_reach_the_decision_log(proxy_factory, http, tmp_path, caplog):
    """Every admin API call, allowed or refused, is one record in each sink (the proxy's
    default ``on_admin_action`` writes to the current pipeline's decision log)."""
    caplog.set_level(logging.INFO)
    config = admin_config({"audit": {"file": str(tmp_path / "decisions.jsonl")}})
    proxy = await proxy_factory(config)
    token = admin_token("ops-alice")
    revoke = {"subject": "viewer-3", "for": "1h"}
    status, _ = await admin_call(http, proxy, "POST", "/revocations", token, json=revoke)
    assert status == 200
    status, _ = await admin_call(http, proxy, "GET", "/circuits")  # no admin token
    assert status == 401
    allowed, refused = await records_of(proxy, tmp_path)
    assert allowed["type"] == "admin_action" and allowed["transport"] == "admin"
    assert allowed["action"] == "revoke" and allowed["outcome"] == "ok"
    assert allowed["operator"] == "token:ops-alice"
    assert allowed["target"]["subject"] == "viewer-3"
    assert allowed["client_address"] == "127.0.0.1"
    assert allowed["time"].endswith("Z") and allowed["request_id"]
    assert refused["action"] == "show_circuits" and refused["outcome"] == "TOKEN_MISSING"
    assert "operator" not in refused
    streamed = [json.loads(line)["audit"] for line in stream_lines(caplog)]
    assert streamed == [allowed, refused]
    assert token not in (tmp_path / "decisions.jsonl").read_text()


async def test_admin_actions_are_still_logged_with_the_decision_log_off(
    proxy_factory, http, caplog
):
    caplog.set_level(logging.INFO)
    proxy = await proxy_factory(admin_config({"audit": {"enabled": False}}))
    status, _ = await admin_call(http, proxy, "GET", "/circuits", admin_token())
    assert status == 200
    [line] = [r.getMessage() for r in caplog.records if r.name == "proxy.admin"]
    assert line.startswith("admin show_circuits by token:alice")
    assert not stream_lines(caplog)


async def test_records_survive_rotation_and_a_second_log_on_the_same_file(tmp_path):
    settings = AuditSettings(file=tmp_path / "d.jsonl", max_bytes=2000, backups=50, stream=False)
    old, fresh = AuditLog(settings), AuditLog(settings)  # a reload: two pipelines, one file
    old.start()
    fresh.start()
    for i in range(300):
        log = old if i % 2 else fresh
        log.decision(Decision(time=1.0e9, request_id=f"r{i}", transport="http", outcome="issued"))
    await asyncio.to_thread(old.stop)
    await asyncio.to_thread(fresh.stop)
    files = sorted(tmp_path.glob("d.jsonl*"))
    assert len(files) > 2  # rotated
    ids = [json.loads(line)["request_id"] for f in files for line in f.read_text().splitlines()]
    assert sorted(ids) == sorted(f"r{i}" for i in range(300))


async def test_a_record_after_stop_is_still_written(tmp_path):
    log = AuditLog(AuditSettings(file=tmp_path / "late.jsonl", stream=False))
    log.start()
    await asyncio.to_thread(log.stop)
    log.decision(Decision(time=1.0e9, request_id="late", transport="grpc", outcome="cancelled"))
    [line] = (tmp_path / "late.jsonl").read_text().splitlines()
    assert json.loads(line)["request_id"] == "late"


class _CountingStream:
    """A text stream that counts its writes (what a system call per write would cost)."""

    def __init__(self) -> None:
        self.writes = 0
        self.text = ""

    def write(self, text: str) -> None:
        self.writes += 1
        self.text += text

    def flush(self) -> None:
        pass


async def test_the_log_stream_gets_a_batch_in_one_write(tmp_path):
    stream = _CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("license_proxy.audit")
    logger.addHandler(handler)
    old_propagate, logger.propagate = logger.propagate, False
    log = AuditLog(AuditSettings(stream=True))
    try:
        log.decision(
            Decision(time=1.0e9, request_id="before-start", transport="http", outcome="issued")
        )
        log.start()
        for i in range(200):
            log.decision(
                Decision(time=1.0e9, request_id=f"r{i}", transport="grpc", outcome="issued")
            )
        await asyncio.to_thread(log.stop)
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate
    lines = [json.loads(line) for line in stream.text.splitlines()]
    assert [line["audit"]["request_id"] for line in lines] == ["before-start"] + [
        f"r{i}" for i in range(200)
    ]
    assert all(line["message"] == "license_decision" for line in lines)
    # One write for the record before the writer ran, then a handful for 200 records.
    assert stream.writes < 10, stream.writes


def test_the_log_is_off_when_disabled(tmp_path):
    pipeline = build_pipeline(
        proxy_config({"audit": {"enabled": False, "file": str(tmp_path / "x.jsonl")}})
    )
    assert not pipeline.services.audit.enabled
    assert "audit" not in pipeline.host.implementations("proxy_license_issued")


@pytest.mark.parametrize(
    ("audit", "path", "message"),
    [
        ({"subject": "hash"}, "audit", "subject_key"),
        ({"file": "/nonexistent-folder/decisions.jsonl"}, "audit.file", "does not exist"),
        ({"subject": "sha1"}, "audit.subject", ""),
        ({"max_bytes": -1}, "audit.max_bytes", ""),
        ({"unknown": 1}, "audit.unknown", "unknown key"),
    ],
)
def test_bad_audit_config_fails_at_start_with_the_key_path(audit, path, message):
    with pytest.raises(ConfigError) as failed:
        build_pipeline(proxy_config({"audit": audit}))
    assert any(p == path and message in m for p, m in failed.value.errors), failed.value.errors


async def _drain_lines(stream: asyncio.StreamReader, into: list[bytes]) -> None:
    while line := await stream.readline():
        into.append(line)


async def test_no_record_is_lost_under_load_and_sigterm(tmp_path, dev_token):
    """300 requests over both transports, a third held in flight when SIGTERM comes: every
    answered request has exactly one record in the file and one in the log stream."""
    root = ROOT
    config = tmp_path / "proxy.toml"
    config.write_text(
        embedded_default_text()
        + f'\n[plugins]\nmodules = ["{HOLD_PLUGIN}"]\n'
        + '\n[log]\nformat = "json"\naccess = false\n'
        + f'\n[audit]\nfile = "{tmp_path / "decisions.jsonl"}"\n'
    )
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("license-proxy")),
        "serve",
        "--config",
        str(config),
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[bytes] = []
    try:
        listening = re.compile(rb"serving gRPC on [\d.]+:(\d+) and HTTP on [\d.]+:(\d+)")
        while not (match := listening.search(b"".join(lines[-1:]))):
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "the proxy exited before listening"
            lines.append(line)
        draining = asyncio.create_task(_drain_lines(process.stderr, lines))
        grpc_target, url = f"127.0.0.1:{int(match[1])}", f"http://127.0.0.1:{int(match[2])}"
        token = dev_token(ttl=600)
        answered: list[str] = []
        quick_done = asyncio.Event()
        quick_left = [200]

        async def over_http(session: aiohttp.ClientSession, hold: float) -> None:
            async with session.post(
                f"{url}/v1/licenses/clearkey",
                data=clearkey_request(KID),
                headers={"Authorization": f"Bearer {token}", "x-hold": str(hold)},
            ) as response:
                await response.read()
                assert response.status == 200
                answered.append(response.headers["X-Request-Id"])

        async def over_grpc(stub: Any, hold: float) -> None:
            response = await stub.AcquireLicense(
                pb.AcquireLicenseRequest(
                    drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token
                ),
                metadata=(("x-hold", str(hold)),),
            )
            answered.append(response.request_id)

        async def one(i: int, session: aiohttp.ClientSession, stub: Any) -> None:
            hold = 1.5 if i % 3 == 0 else 0.0
            await (over_grpc(stub, hold) if i % 2 else over_http(session, hold))
            if not hold:
                quick_left[0] -= 1
                if quick_left[0] == 0:
                    quick_done.set()

        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100)
            ) as session,  # under server.max_connections_per_client (128)
            grpc.aio.insecure_channel(grpc_target) as channel,
        ):
            stub = license_proxy_pb2_grpc.LicenseProxyServiceStub(channel)
            calls = asyncio.gather(*(one(i, session, stub) for i in range(300)))
            await asyncio.wait_for(quick_done.wait(), 60)  # the held third is still in flight
            process.send_signal(signal.SIGTERM)
            await calls
        assert await asyncio.wait_for(process.wait(), 60) == 0
        await draining
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert len(answered) == 300
    in_file = [
        json.loads(line)["request_id"]
        for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
    ]
    logged = [json.loads(raw) for raw in lines if raw.startswith(b"{")]
    streamed = [e["audit"]["request_id"] for e in logged if e["logger"] == "license_proxy.audit"]
    assert sorted(in_file) == sorted(answered)
    assert sorted(streamed) == sorted(answered)


async def test_access_lines_carry_the_reason_code_on_both_transports(
    proxy_factory, http, dev_token, caplog
):
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    proxy = await proxy_factory()
    challenge = clearkey_request(KID)
    token = dev_token()
    await acquire_http(proxy, http, token, challenge)
    await acquire_http(proxy, http, token + "x", challenge)
    await proxy.stub().AcquireLicense(
        pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=challenge, token=token
        )
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await proxy.stub().AcquireLicense(
            pb.AcquireLicenseRequest(drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=b"{", token=token)
        )
    http_lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    grpc_lines = [r.getMessage() for r in caplog.records if r.name == "proxy.grpc.access"]
    assert len(http_lines) == 2 and len(grpc_lines) == 2
    assert " 200 - " in http_lines[0]
    assert " 401 TOKEN_" in http_lines[1]  # the reason, not only the status
    assert grpc_lines[0].startswith("127.0.0.1 AcquireLicense OK - ")
    assert grpc_lines[1].startswith("127.0.0.1 AcquireLicense INVALID_ARGUMENT CHALLENGE_INVALID ")
    grpc_ids = [r.request_id for r in caplog.records if r.name == "proxy.grpc.access"]
    assert all(i != "-" for i in grpc_ids)  # the request id is on the line
    assert all(token not in line for line in http_lines + grpc_lines)


async def test_no_grpc_access_line_when_access_logging_is_off(proxy_factory, dev_token, caplog):
    caplog.set_level(logging.INFO)
    proxy = await proxy_factory(proxy_config({"log": {"access": False}}))
    await proxy.stub().AcquireLicense(
        pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=dev_token()
        )
    )
    assert not [r for r in caplog.records if r.name == "proxy.grpc.access"]


async def test_vendor_fields_and_its_correlation_id_are_recorded(
    proxy_factory, http, dev_token, tmp_path
):
    async with serving(acme_app()) as acme:
        proxy = await proxy_factory(
            acme_config(audited(tmp_path), acme.url), plugins=[AcmeVendor()]
        )
        token = dev_token({"vendor": "acme"})
        answer = await proxy.stub().AcquireLicense(
            pb.AcquireLicenseRequest(
                drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token
            )
        )
        assert answer.vendor_metadata["vendor_correlation_id"] == "acme-1"
        acme.fault.set("reject")
        status, refused_id, body = await acquire_http(proxy, http, token, clearkey_request(KID))
        assert status == 403
        assert json.loads(body)["metadata"]["vendor_correlation_id"] == "acme-refusal-1"
        issued, refused = await records_of(proxy, tmp_path)
    assert issued["request_id"] == answer.request_id
    assert issued["backend"] == "acme" and issued["vendor"] == "acme"
    assert issued["policy"] == "acme-policy"
    assert issued["vendor_correlation_id"] == "acme-1"
    assert refused["request_id"] == refused_id
    assert refused["outcome"] == "denied" and refused["reason"] == "UPSTREAM_REJECTED"
    assert refused["stage"] == "issue"
    assert refused["backend"] == "acme" and refused["vendor"] == "acme"
    assert refused["vendor_code"] == "ACME-7"
    assert refused["vendor_correlation_id"] == "acme-refusal-1"
