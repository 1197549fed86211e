"""The admin API on its own listener: who may call it, what each route does, what it records.

Revocations and sessions are tested on one memory store and on two proxies sharing
one real Redis (every replica refuses a revoked subject on its next request).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.admin.actions import AdminAction, AdminActionKind
from proxy.challenge import samples
from proxy.errors import ConfigError
from proxy.testing import proxy_config, start_proxy
from proxy.tokens import mint
from tests.access_support import KID, grpc_call, http_call
from tests.token_support import KeyServer, ec_key, public_jwk, sign

ADMIN_SECRET = "ab" * 32
ADMIN_ISSUER = "ops.example"


def admin_token(sub: str = "alice", **claims: Any) -> str:
    """An admin token for the issuer the tests configure, five minutes long."""
    import time

    now = int(claims.pop("now", time.time()))
    body = {
        "iss": ADMIN_ISSUER,
        "aud": "license-proxy-admin",
        "sub": sub,
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return mint(body, bytes.fromhex(ADMIN_SECRET))


def admin_config(extra: dict[str, Any] | None = None, **admin: Any) -> dict[str, Any]:
    """The embedded default with the admin token issuer, and ``extra`` merged in."""
    settings = {"token": {"issuer": ADMIN_ISSUER, "secret": f"hex:{ADMIN_SECRET}"}, **admin}
    return proxy_config({"admin": settings, **(extra or {})})


class Recorded:
    """Collects the admin actions a proxy hands its callback."""

    def __init__(self) -> None:
        self.actions: list[AdminAction] = []

    def __call__(self, action: AdminAction) -> None:
        self.actions.append(action)


async def admin_proxy(proxy_factory: Any, config: dict[str, Any], **kwargs: Any) -> Any:
    proxy = await proxy_factory(config, **kwargs)
    proxy.recorded = Recorded()
    proxy.app.on_admin_action = proxy.recorded
    return proxy


async def call(
    http: Any, proxy: Any, method: str, path: str, token: str | None = None, **kwargs: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(
        method, f"{proxy.admin_url}/admin/v1{path}", headers=headers, **kwargs
    ) as answer:
        body = await answer.read()
        return answer.status, json.loads(body) if body else None


# -- /metrics --------------------------------------------------------------------------


async def test_metrics_leave_the_player_listener_for_the_admin_listener(
    proxy_factory, http, dev_token
):
    proxy = await proxy_factory()
    await http_call(proxy, http, dev_token())
    async with http.get(f"{proxy.http_url}/metrics") as answer:
        assert answer.status == 404
        assert json.loads(await answer.read())["reason"] == "REQUEST_INVALID"
    async with http.get(f"{proxy.admin_url}/metrics") as answer:
        assert answer.status == 200
        assert "license_proxy_requests_total" in await answer.text()
    # nothing of the player API on the admin listener
    async with http.get(f"{proxy.admin_url}/healthz") as answer:
        assert answer.status == 404


async def test_a_setting_keeps_metrics_on_the_player_listener(proxy_factory, http):
    proxy = await proxy_factory(proxy_config({"server": {"http": {"metrics": True}}}))
    async with http.get(f"{proxy.http_url}/metrics") as answer:
        assert answer.status == 200
        assert "license_proxy_requests_total" in await answer.text()


async def test_without_an_admin_section_there_is_no_admin_listener(proxy_factory):
    config = proxy_config()
    del config["admin"]
    proxy = await proxy_factory(config)
    assert proxy.app.admin_runner is None and proxy.app.admin_port == 0


# -- who may call ----------------------------------------------------------------------


async def test_admin_routes_need_an_admin_token(proxy_factory, http, dev_token):
    proxy = await admin_proxy(proxy_factory, admin_config())
    refused = [
        (None, "TOKEN_MISSING"),
        (dev_token(), "TOKEN_SIGNATURE_INVALID"),  # a player's token opens nothing
        (admin_token(iss="someone-else"), "TOKEN_ISSUER_MISMATCH"),
        (admin_token(aud="license-proxy"), "TOKEN_AUDIENCE_MISMATCH"),
        (admin_token(now=1_000_000_000), "TOKEN_EXPIRED"),
        (admin_token(exp=2_000_000_000 * 2), "TOKEN_MALFORMED"),  # lives far too long
        ("not.a.token", "TOKEN_MALFORMED"),
    ]
    for token, reason in refused:
        status, problem = await call(http, proxy, "GET", "/circuits", token)
        assert (status, problem["reason"]) == (401, reason), token
    assert all(a.outcome != "ok" and a.operator is None for a in proxy.recorded.actions)
    assert [a.outcome for a in proxy.recorded.actions] == [r for _, r in refused]
    for token, _ in refused:
        if token:
            assert token not in repr(proxy.recorded.actions)
    status, body = await call(http, proxy, "GET", "/circuits", admin_token())
    assert status == 200 and body == {"circuits": []}
    assert proxy.recorded.actions[-1].operator == "token:alice"


async def test_the_token_command_mints_an_admin_token_as_the_docs_say(proxy_factory, http, capsys):
    from proxy.cli import main

    argv = ["token", "--key", f"hex:{ADMIN_SECRET}", "--iss", ADMIN_ISSUER]
    argv += ["--aud", "license-proxy-admin", "--ttl", "600", "sub=alice"]
    assert main(argv) == 0
    token = capsys.readouterr().out.strip()
    proxy = await admin_proxy(proxy_factory, admin_config())
    status, _ = await call(http, proxy, "GET", "/key-sources", token)
    assert status == 200
    assert proxy.recorded.actions[-1].operator == "token:alice"


async def test_without_a_configured_credential_every_admin_route_is_refused(proxy_factory, http):
    proxy = await proxy_factory()  # the embedded default: [admin] without a token
    status, problem = await call(http, proxy, "GET", "/circuits", admin_token())
    assert status == 401
    assert "admin.token" in problem["detail"]


@pytest.mark.parametrize(
    ("admin", "path", "message"),
    [
        ({"host": "0.0.0.0"}, "admin", "needs admin.token"),
        ({"token": {"issuer": "ops", "secret": "hex:abcd"}}, "admin.token", "at least 32 bytes"),
        (
            {"token": {"issuer": "ops", "secret": f"hex:{ADMIN_SECRET}", "algorithms": ["none"]}},
            "admin.token.algorithms",
            "refused algorithm",
        ),
        ({"token": {"issuer": "ops", "algorithms": ["ES256"]}}, "admin.token", "public_key"),
        ({"revocations": {"fail_close": True}}, "admin.revocations.fail_close", "unknown key"),
    ],
)
def test_bad_admin_config_fails_at_start_with_its_key_path(admin, path, message):
    from proxy.builder import build_pipeline

    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config({"admin": admin}))
    assert any(p == path and message in m for p, m in raised.value.errors), raised.value.errors


async def test_an_ec_public_key_verifies_admin_tokens(proxy_factory, http, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = ec_key("admin")
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "admin.pem").write_bytes(pem)
    token_settings = {
        "issuer": ADMIN_ISSUER,
        "algorithms": ["ES256"],
        "public_key": "file:admin.pem",
    }
    proxy = await proxy_factory(
        proxy_config({"admin": {"token": token_settings}}), base_dir=tmp_path
    )
    import time

    now = int(time.time())
    claims = {
        "iss": ADMIN_ISSUER,
        "aud": "license-proxy-admin",
        "sub": "bob",
        "iat": now,
        "exp": now + 60,
    }
    status, _ = await call(http, proxy, "GET", "/circuits", mint(claims, key, algorithm="ES256"))
    assert status == 200
    status, problem = await call(http, proxy, "GET", "/circuits", admin_token())
    assert (status, problem["reason"]) == (401, "TOKEN_ALGORITHM_REJECTED")


# -- revocations -----------------------------------------------------------------------


async def test_a_revoked_subject_is_refused_on_its_next_request_then_lifted(
    proxy_factory, http, dev_token
):
    proxy = await admin_proxy(proxy_factory, admin_config())
    alice, bob = dev_token({"sub": "alice"}), dev_token({"sub": "bob"})
    assert (await grpc_call(proxy, alice)).ok
    status, body = await call(
        http,
        proxy,
        "POST",
        "/revocations",
        admin_token("ops-1"),
        json={"subject": "alice", "for": "1h"},
    )
    assert status == 200 and body["revoked"] and body["kind"] == "subject"
    refused = await grpc_call(proxy, alice)
    assert (refused.reason, refused.status) == ("TOKEN_REVOKED", grpc.StatusCode.UNAUTHENTICATED)
    assert refused.metadata["revoked"] == "subject"
    over_http = await http_call(proxy, http, dev_token({"sub": "alice"}))
    assert (over_http.reason, over_http.status) == ("TOKEN_REVOKED", 401)
    assert (await grpc_call(proxy, bob)).ok

    status, body = await call(http, proxy, "GET", "/revocations?subject=alice", admin_token())
    assert status == 200 and body["revoked"] and body["until"].endswith("Z")
    status, body = await call(http, proxy, "DELETE", "/revocations?subject=alice", admin_token())
    assert status == 200 and body["lifted"] is True
    assert (await grpc_call(proxy, alice)).ok

    kinds = [(a.action, a.operator, dict(a.target)) for a in proxy.recorded.actions]
    assert kinds[0][0] is AdminActionKind.REVOKE
    assert kinds[0][1] == "token:ops-1" and kinds[0][2]["subject"] == "alice"
    assert [k[0] for k in kinds[1:]] == [
        AdminActionKind.SHOW_REVOCATION,
        AdminActionKind.LIFT_REVOCATION,
    ]


async def test_a_revoked_jti_refuses_that_token_only(proxy_factory, http, dev_token):
    proxy = await admin_proxy(proxy_factory, admin_config())
    stolen = dev_token({"sub": "carol", "jti": "token-17"})
    status, _ = await call(
        http, proxy, "POST", "/revocations", admin_token(), json={"jti": "token-17", "for": 600}
    )
    assert status == 200
    refused = await grpc_call(proxy, stolen)
    assert (refused.reason, refused.metadata["revoked"]) == ("TOKEN_REVOKED", "jti")
    assert (await grpc_call(proxy, dev_token({"sub": "carol"}))).ok


async def test_a_subject_revoked_for_one_issuer_keeps_its_namesake_elsewhere(
    proxy_factory, http, dev_token
):
    proxy = await admin_proxy(proxy_factory, admin_config())
    body = {"subject": "dave", "issuer": "some-other-idp", "for": "1h"}
    assert (await call(http, proxy, "POST", "/revocations", admin_token(), json=body))[0] == 200
    assert (await grpc_call(proxy, dev_token({"sub": "dave"}))).ok
    body["issuer"] = "license-proxy-dev"
    assert (await call(http, proxy, "POST", "/revocations", admin_token(), json=body))[0] == 200
    assert (await grpc_call(proxy, dev_token({"sub": "dave"}))).reason == "TOKEN_REVOKED"


async def test_a_revocation_ends_at_its_time(proxy_factory, http, fake_clock, dev_token):
    proxy = await admin_proxy(proxy_factory, admin_config(), clock=fake_clock)
    until = "2027-01-15T08:00:00Z"  # fake_clock starts at 2027-01-15T08:00:00 less 1000 s
    fake_clock.now = 1_800_000_000.0 - 1000
    body = {"subject": "erin", "until": until}
    status, shown = await call(http, proxy, "POST", "/revocations", admin_token(), json=body)
    assert status == 200 and shown["until"] == until
    token = dev_token({"sub": "erin"}, now=fake_clock.now)
    assert (await grpc_call(proxy, token)).reason == "TOKEN_REVOKED"
    fake_clock.advance(1001)
    assert (await grpc_call(proxy, dev_token({"sub": "erin"}, now=fake_clock.now))).ok


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"for": "1h"}, "subject"),
        ({"subject": "a", "jti": "b", "for": "1h"}, "subject"),
        ({"subject": "a"}, "until"),
        ({"subject": "a", "until": "yesterday"}, "until"),
        ({"subject": "a", "until": "2020-01-01T00:00:00Z"}, "until"),
        ({"subject": "a", "until": "2099-01-01T00:00:00"}, "until"),
        ({"subject": "a", "for": "400d"}, "until"),
        ({"subject": "a", "for": "soon"}, "for"),
        ({"subject": "", "for": "1h"}, "subject"),
        ({"subject": "x" * 513, "for": "1h"}, "subject"),
        ({"jti": "j", "issuer": "i", "for": "1h"}, "issuer"),
        ({"subject": "a", "for": "1h", "reason": "why"}, "reason"),
    ],
)
async def test_a_bad_revocation_is_refused_naming_its_field(proxy_factory, http, body, field):
    proxy = await admin_proxy(proxy_factory, admin_config())
    status, problem = await call(http, proxy, "POST", "/revocations", admin_token(), json=body)
    assert (status, problem["reason"]) == (400, "REQUEST_INVALID")
    assert problem["invalid_params"][0]["name"] == field
    assert proxy.recorded.actions[-1].outcome == "REQUEST_INVALID"


async def test_a_body_that_is_no_json_object_is_refused(proxy_factory, http):
    proxy = await admin_proxy(proxy_factory, admin_config())
    for data in (b"[1]", b"{", b"\xff"):
        status, problem = await call(http, proxy, "POST", "/revocations", admin_token(), data=data)
        assert (status, problem["reason"]) == (400, "REQUEST_INVALID")


# -- sessions, circuits, key sources, reload -------------------------------------------


async def test_a_subjects_sessions_are_listed_and_ended(proxy_factory, http, dev_token):
    config = admin_config({"access": {"concurrency": {"limit": 1}}})
    proxy = await admin_proxy(proxy_factory, config)
    frank = dev_token({"sub": "frank"})
    assert (await grpc_call(proxy, frank, content_id="movie-a")).ok
    assert (await grpc_call(proxy, frank, content_id="movie-b")).reason == (
        "CONCURRENCY_LIMIT_EXCEEDED"
    )
    status, body = await call(http, proxy, "GET", "/sessions?subject=frank", admin_token())
    assert status == 200 and len(body["sessions"]) == 1
    [session] = body["sessions"]
    assert "movie-a" not in session["session"]  # a digest, not what the player sent
    status, body = await call(
        http,
        proxy,
        "DELETE",
        f"/sessions?subject=frank&session={session['session']}",
        admin_token(),
    )
    assert (status, body["ended"]) == (200, 1)
    assert (await grpc_call(proxy, frank, content_id="movie-b")).ok
    status, body = await call(http, proxy, "DELETE", "/sessions?subject=frank", admin_token())
    assert body["ended"] == 1
    status, body = await call(http, proxy, "GET", "/sessions?subject=frank", admin_token())
    assert body["sessions"] == []
    actions = [a.action for a in proxy.recorded.actions]
    assert actions == [
        AdminActionKind.LIST_SESSIONS,
        AdminActionKind.END_SESSIONS,
        AdminActionKind.END_SESSIONS,
        AdminActionKind.LIST_SESSIONS,
    ]


async def test_sessions_without_a_concurrency_rule_say_so(proxy_factory, http):
    proxy = await admin_proxy(proxy_factory, admin_config())
    status, problem = await call(http, proxy, "GET", "/sessions?subject=x", admin_token())
    assert status == 400 and "access.concurrency" in problem["detail"]


async def test_circuits_show_each_vendor_backend(vendor_sandbox, proxy_factory, http, dev_token):
    config = vendor_sandbox.config(admin_config())
    config["backends"]["axinom"]["circuit_breaker"] = {"failure_threshold": 1}
    proxy = await admin_proxy(proxy_factory, config)
    vendor_sandbox["axinom"].fault.set("error", status=503)
    challenge = samples.widevine_license_request(key_ids=[KID], content_id=b"movie-1")
    answer = await grpc_call(
        proxy,
        dev_token({"vendor": "axinom"}),
        challenge=challenge,
        drm_system=pb.DRM_SYSTEM_WIDEVINE,
    )
    assert answer.reason == "UPSTREAM_UNAVAILABLE", answer
    status, body = await call(http, proxy, "GET", "/circuits", admin_token())
    assert status == 200
    shown = {c["backend"]: c for c in body["circuits"]}
    assert "clearkey" not in shown, "a local backend has no circuit"
    assert shown["axinom"]["state"] == "open" and shown["axinom"]["failures"] == 1
    assert shown["axinom"]["probe_in"] > 0
    assert shown["verimatrix"] == {
        "backend": "verimatrix",
        "vendor": "verimatrix",
        "state": "closed",
        "failures": 0,
        "called": False,
    }


async def test_key_sources_show_each_remote_key_set(proxy_factory, http):
    key = ec_key("jwks")
    server = await KeyServer(keys=[public_jwk(key, kid="k1")]).start()
    try:
        issuer = {
            "issuer": server.issuer,
            "audiences": ["license-proxy"],
            "algorithms": ["ES256"],
            "jwks_uri": server.jwks_uri,
        }
        config = admin_config({"auth": {"issuers": [issuer]}})
        proxy = await admin_proxy(proxy_factory, config)
        import time

        now = int(time.time())
        body = {
            "iss": server.issuer,
            "aud": "license-proxy",
            "sub": "g",
            "iat": now,
            "exp": now + 60,
        }
        token = sign(body, key, alg="ES256", kid="k1")
        # the first fetch ends before a token that needs it is judged
        assert (await grpc_call(proxy, token)).ok
        status, body = await call(http, proxy, "GET", "/key-sources", admin_token())
    finally:
        await server.stop()
    assert status == 200
    [source] = body["key_sources"]
    assert source["issuer"] == server.issuer and source["url"] == server.jwks_uri
    assert source["keys"] == 1 and source["successes"] >= 1 and source["failing"] is False
    assert source["last_success"].endswith("Z")


async def test_reload_through_the_admin_api(http, dev_token):
    from proxy.builder import build_pipeline
    from proxy.server import ProxyApp

    config = admin_config()
    builds: list[Any] = []

    def rebuild() -> Any:
        builds.append(1)
        return build_pipeline(config)

    app = ProxyApp(build_pipeline(config), rebuild=rebuild)
    recorded = Recorded()
    app.on_admin_action = recorded
    await app.start()
    try:
        before = app.pipeline
        async with http.post(
            f"http://127.0.0.1:{app.admin_port}/admin/v1/reload",
            headers={"Authorization": f"Bearer {admin_token()}"},
        ) as answer:
            assert (answer.status, await answer.json()) == (200, {"reloaded": True})
        assert builds == [1] and app.pipeline is not before
        assert recorded.actions[-1].action is AdminActionKind.RELOAD
    finally:
        await app.stop()


async def test_a_proxy_that_cannot_reload_says_so(proxy_factory, http):
    proxy = await admin_proxy(proxy_factory, admin_config())
    status, problem = await call(http, proxy, "POST", "/reload", admin_token())
    assert status == 400 and "reload" in problem["detail"]


async def test_an_admin_action_callback_that_fails_never_changes_the_answer(
    proxy_factory, http, caplog
):
    proxy = await proxy_factory(admin_config())

    def broken(action: AdminAction) -> None:
        raise RuntimeError("the decision log is down")

    proxy.app.on_admin_action = broken
    status, _ = await call(http, proxy, "GET", "/circuits", admin_token())
    assert status == 200
    assert "admin action callback failed" in caplog.text


# -- every replica on one Redis --------------------------------------------------------


@pytest.mark.redis
async def test_revocations_and_sessions_hold_in_every_replica_on_one_redis(
    redis_server, http, dev_token
):
    config = admin_config(
        {"access": {"state": {"store": redis_server.url}, "concurrency": {"limit": 1}}}
    )
    a = await start_proxy(config)
    b = await start_proxy(config)
    try:
        token = dev_token({"sub": "grace"})
        assert (await grpc_call(a, token, content_id="film")).ok
        # the session taken on a is listed and ended through b's admin API
        status, body = await call(http, b, "GET", "/sessions?subject=grace", admin_token())
        assert status == 200 and len(body["sessions"]) == 1
        assert (await grpc_call(b, token, content_id="other")).reason == (
            "CONCURRENCY_LIMIT_EXCEEDED"
        )
        status, body = await call(http, b, "DELETE", "/sessions?subject=grace", admin_token())
        assert body["ended"] == 1
        assert (await grpc_call(a, token, content_id="other")).ok

        # revoked through a: b refuses the very next request, on both transports
        body = {"subject": "grace", "for": "10m"}
        assert (await call(http, a, "POST", "/revocations", admin_token(), json=body))[0] == 200
        assert (await grpc_call(b, dev_token({"sub": "grace"}))).reason == "TOKEN_REVOKED"
        assert (await http_call(b, http, dev_token({"sub": "grace"}))).reason == "TOKEN_REVOKED"
        jti = {"jti": "shared-jti", "for": 60}
        assert (await call(http, b, "POST", "/revocations", admin_token(), json=jti))[0] == 200
        stolen = dev_token({"sub": "heidi", "jti": "shared-jti"})
        assert (await grpc_call(a, stolen)).reason == "TOKEN_REVOKED"

        # the store goes away: revocations fail closed, and the admin API says why
        redis_server.kill()
        assert (await grpc_call(a, dev_token({"sub": "ivan"}))).reason == "STATE_UNAVAILABLE"
        status, problem = await call(http, a, "GET", "/revocations?jti=x", admin_token())
        assert (status, problem["reason"]) == (503, "STATE_UNAVAILABLE")
    finally:
        await a.stop()
        await b.stop()
        redis_server.start()
