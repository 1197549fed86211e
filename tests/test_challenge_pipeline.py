"""Challenge inspection through the real pipeline and transports: detection, the
per-DRM size limits, key id hints, the FairPlay convention setting, what later
hooks see, and ``license-proxy inspect``."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy import ProxyError, Reason, hookimpl
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.challenge.common import guarded
from proxy.cli import main
from proxy.encoding import b64url_encode
from proxy.errors import ConfigError
from proxy.model import LicenseRequest, RequestType
from proxy.testing import proxy_config
from tests.conftest import DATA, clearkey_request

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
OTHER = uuid.UUID("a2c786d0-f9ef-4cb3-b333-cd323a4284a5").bytes
WIDEVINE = samples.widevine_license_request(key_ids=[KID], content_id=b"movie-1")
PLAYREADY = (DATA / "playready" / "ms_docs_license_server_AcquireLicense_request.xml").read_bytes()
PLAYREADY_KID = uuid.UUID("33e0008c-c444-4770-9899-a321e079dd36").bytes
SPC = samples.fairplay_spc()
SMALL_LIMITS = {
    "server": {
        "max_challenge_bytes": {
            "widevine": 3000,
            "playready": 5000,
            "fairplay": 3000,
            "clearkey": 200,
        }
    }
}


async def inspect(proxy, challenge: bytes, drm: int = pb.DRM_SYSTEM_UNSPECIFIED, **fields):
    return await proxy.stub().InspectChallenge(
        pb.InspectChallengeRequest(drm_system=drm, challenge=challenge, **fields)
    )


async def inspect_error(proxy, challenge: bytes, drm: int = pb.DRM_SYSTEM_UNSPECIFIED, **fields):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inspect(proxy, challenge, drm, **fields)
    return raised.value


@pytest.mark.parametrize(
    ("challenge", "drm", "key_ids"),
    [
        (WIDEVINE, pb.DRM_SYSTEM_WIDEVINE, [KID]),
        (b"\x08\x04", pb.DRM_SYSTEM_WIDEVINE, []),
        (PLAYREADY, pb.DRM_SYSTEM_PLAYREADY, [PLAYREADY_KID]),
        (samples.playready_key_message(PLAYREADY), pb.DRM_SYSTEM_PLAYREADY, [PLAYREADY_KID]),
        (SPC, pb.DRM_SYSTEM_FAIRPLAY, []),
        (samples.fairplay_form(SPC, asset_id="a"), pb.DRM_SYSTEM_FAIRPLAY, []),
        (samples.fairplay_json(SPC), pb.DRM_SYSTEM_FAIRPLAY, []),
        (clearkey_request(KID), pb.DRM_SYSTEM_CLEARKEY, [KID]),
    ],
    ids=["widevine", "service-cert", "playready", "key-message", "spc", "form", "json", "clearkey"],
)
async def test_the_drm_is_detected_when_the_caller_does_not_name_it(
    proxy_factory, challenge, drm, key_ids
):
    proxy = await proxy_factory()
    detected = await inspect(proxy, challenge)
    named = await inspect(proxy, challenge, drm)
    assert detected.drm_system == named.drm_system == drm
    assert list(detected.key_ids) == key_ids
    assert list(detected.key_id_uuids) == [str(uuid.UUID(bytes=k)) for k in key_ids]


async def test_inspect_challenge_reports_every_fact(proxy_factory):
    proxy = await proxy_factory()
    response = await inspect(proxy, WIDEVINE, pb.DRM_SYSTEM_WIDEVINE)
    assert response.request_type == pb.REQUEST_TYPE_NEW
    assert response.content_id == "movie-1"
    assert response.client["privacy_mode"] == "false"
    assert response.client["company_name"] == "Example"
    renewal = samples.widevine_license_request(form="existing_license", request_type=2)
    assert (await inspect(proxy, renewal)).request_type == pb.REQUEST_TYPE_RENEWAL
    service = await inspect(proxy, b"\x08\x04")
    assert service.request_type == pb.REQUEST_TYPE_SERVICE_CERTIFICATE


async def test_the_json_route_unwraps_a_playready_key_message(proxy_factory, http):
    proxy = await proxy_factory()
    body = {"challenge": b64url_encode(samples.playready_key_message(PLAYREADY))}
    async with http.post(f"{proxy.http_url}/v1/challenge:inspect", json=body) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["drmSystem"] == "DRM_SYSTEM_PLAYREADY"
    assert answer["keyIdUuids"] == [str(uuid.UUID(bytes=PLAYREADY_KID))]
    assert answer["client"]["client_version"] == "3.1.0.1017"
    assert "Roland" not in json.dumps(answer)  # custom data stays out of the answer


@pytest.mark.parametrize(
    ("drm", "route", "challenge"),
    [
        (pb.DRM_SYSTEM_WIDEVINE, "widevine", samples.widevine_license_request(key_ids=[KID] * 200)),
        (pb.DRM_SYSTEM_PLAYREADY, "playready", samples.playready_key_message(PLAYREADY)),
        (pb.DRM_SYSTEM_FAIRPLAY, "fairplay", samples.fairplay_spc(payload_size=4000)),
        (pb.DRM_SYSTEM_CLEARKEY, "clearkey", clearkey_request(*[KID] * 20)),
    ],
    ids=["widevine", "playready", "fairplay", "clearkey"],
)
async def test_each_drm_has_its_own_size_limit(
    proxy_factory, http, dev_token, drm, route, challenge
):
    proxy = await proxy_factory(proxy_config(SMALL_LIMITS))
    named = await inspect_error(proxy, challenge, drm)
    detected = await inspect_error(proxy, challenge)
    for error in (named, detected):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "CHALLENGE_TOO_LARGE" in dict(error.trailing_metadata())[
            "grpc-status-details-bin"
        ].decode("latin-1")
    async with http.post(
        f"{proxy.http_url}/v1/licenses/{route}",
        data=challenge,
        headers={"Authorization": f"Bearer {dev_token()}"},
    ) as response:
        assert response.status == 413
        assert (await response.json(content_type=None))["reason"] == "CHALLENGE_TOO_LARGE"


async def test_a_challenge_under_its_limit_passes(proxy_factory):
    proxy = await proxy_factory(proxy_config(SMALL_LIMITS))
    assert (await inspect(proxy, WIDEVINE)).key_ids == [KID]


@pytest.mark.parametrize(
    ("challenge", "drm"),
    [
        (WIDEVINE, pb.DRM_SYSTEM_WIDEVINE),
        (PLAYREADY, pb.DRM_SYSTEM_PLAYREADY),
        (clearkey_request(KID), pb.DRM_SYSTEM_CLEARKEY),
    ],
    ids=["widevine", "playready", "clearkey"],
)
async def test_a_key_id_hint_that_contradicts_the_challenge_is_request_invalid(
    proxy_factory, challenge, drm
):
    proxy = await proxy_factory()
    error = await inspect_error(proxy, challenge, drm, key_ids=[OTHER])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert b"REQUEST_INVALID" in dict(error.trailing_metadata())["grpc-status-details-bin"]


async def test_a_matching_key_id_hint_passes(proxy_factory):
    proxy = await proxy_factory()
    assert (await inspect(proxy, WIDEVINE, key_ids=[KID])).key_ids == [KID]


@pytest.mark.parametrize(
    ("challenge", "drm", "words"),
    [
        (b"\xff\xfe\xfd", pb.DRM_SYSTEM_WIDEVINE, b"Widevine"),
        (b"<nope/>", pb.DRM_SYSTEM_PLAYREADY, b"PlayReady"),
        (b"\x00\x00\x00\x01short", pb.DRM_SYSTEM_FAIRPLAY, b"FairPlay"),
        (b"{}", pb.DRM_SYSTEM_CLEARKEY, b"ClearKey"),
        (b"\x7f\x7f\x7f", pb.DRM_SYSTEM_UNSPECIFIED, b"could not be detected"),
    ],
    ids=["widevine", "playready", "fairplay", "clearkey", "undetected"],
)
async def test_unreadable_challenges_are_challenge_invalid(proxy_factory, challenge, drm, words):
    proxy = await proxy_factory()
    error = await inspect_error(proxy, challenge, drm)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    assert b"CHALLENGE_INVALID" in details
    assert words in details


async def test_the_fairplay_convention_is_a_setting(proxy_factory):
    config = proxy_config({"challenge": {"fairplay": {"content_id_convention": "axinom"}}})
    proxy = await proxy_factory(config)
    uri = f"skd://{uuid.UUID(bytes=KID)}"
    response = await inspect(proxy, SPC, pb.DRM_SYSTEM_FAIRPLAY, content_id=uri)
    assert list(response.key_ids) == [KID]
    assert response.content_id == str(uuid.UUID(bytes=KID))
    # a hint that contradicts the key id the key URI gives is refused
    error = await inspect_error(proxy, SPC, pb.DRM_SYSTEM_FAIRPLAY, content_id=uri, key_ids=[OTHER])
    assert b"REQUEST_INVALID" in dict(error.trailing_metadata())["grpc-status-details-bin"]
    # a content id that breaks the convention is the request's fault
    error = await inspect_error(proxy, SPC, pb.DRM_SYSTEM_FAIRPLAY, content_id="movie")
    assert b"REQUEST_INVALID" in dict(error.trailing_metadata())["grpc-status-details-bin"]


def test_bad_fairplay_settings_fail_at_start_with_their_key_path():
    config = proxy_config({"challenge": {"fairplay": {"content_id_convention": "x", "typo": 1}}})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    paths = {path for path, _ in raised.value.errors}
    assert "challenge.fairplay.content_id_convention" in paths
    assert "challenge.fairplay.typo" in paths


def test_an_unknown_challenge_section_is_reported():
    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config({"challenge": {"fairplai": {}}}))
    assert "challenge.fairplai" in {path for path, _ in raised.value.errors}


class _SeesTheChallenge:
    def __init__(self) -> None:
        self.seen = []

    @hookimpl
    def proxy_authorize(self, ctx, principal):
        self.seen.append(ctx.challenge)


async def test_later_hooks_see_what_the_inspector_found(dev_token):
    spy = _SeesTheChallenge()
    pipeline = build_pipeline(proxy_config(), plugins=[spy])
    request = LicenseRequest(
        challenge=samples.widevine_license_request(key_ids=[KID, OTHER], content_id=b"c-9"),
        token=dev_token(),
        dry_run=True,
    )
    result = await pipeline.acquire(request)
    (info,) = spy.seen
    assert info.key_ids == (KID, OTHER)
    assert info.details["widevine_content_id"] == b"c-9"
    assert result.key_ids == (KID, OTHER)
    assert result.request_type is RequestType.NEW


async def test_the_request_content_id_fills_in_and_a_contradiction_is_refused(proxy_factory):
    proxy = await proxy_factory()
    ck = await inspect(proxy, clearkey_request(KID), content_id="movie-2")
    assert ck.content_id == "movie-2"
    wv = await inspect(proxy, WIDEVINE, content_id="movie-1")
    assert wv.content_id == "movie-1"
    # The CDM's content id can't be swapped for another: entitlement keys on it.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await inspect(proxy, WIDEVINE, content_id="other")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contradicts" in raised.value.details()


def test_a_parser_bug_becomes_challenge_invalid_and_is_logged(caplog):
    def broken():
        raise TypeError("bug")

    with pytest.raises(ProxyError) as raised:
        guarded("Widevine", broken)
    assert raised.value.reason is Reason.CHALLENGE_INVALID
    assert "unexpectedly" in caplog.text


# -- license-proxy inspect --------------------------------------------------------------------


def test_cli_inspect_prints_the_facts(tmp_path, capsys):
    path = tmp_path / "challenge.bin"
    path.write_bytes(PLAYREADY)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "playready" in out
    assert str(uuid.UUID(bytes=PLAYREADY_KID)) in out
    assert "client_version: 3.1.0.1017" in out
    assert "Roland" not in out


def test_cli_inspect_json_with_drm_and_content_id(tmp_path, capsys):
    path = tmp_path / "spc.txt"
    path.write_bytes(samples.fairplay_form(SPC))
    assert (
        main(["inspect", str(path), "--drm", "fairplay", "--content-id", "skd://m-3", "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["drm_system"] == "fairplay"
    assert summary["content_id"] == "m-3"
    assert summary["details"]["fairplay_framing"] == "form"
    assert summary["payload_bytes"] == len(SPC)


def test_cli_inspect_base64_and_errors(tmp_path, capsys):
    path = tmp_path / "wv.b64"
    import base64

    path.write_bytes(base64.b64encode(WIDEVINE))
    assert main(["inspect", str(path), "--base64", "--key-id", str(uuid.UUID(bytes=KID))]) == 0
    assert "widevine" in capsys.readouterr().out
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x7f\x7f")
    assert main(["inspect", str(bad)]) == 1
    assert "CHALLENGE_INVALID" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing")]) == 2
