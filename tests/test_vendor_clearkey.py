"""The built-in ClearKey backend and inspector, against the W3C EME examples."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest

from proxy.builder import build_pipeline
from proxy.challenge.clearkey import parse_clearkey
from proxy.encoding import b64url_decode, b64url_encode
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import LicenseRequest, RequestType
from proxy.testing import proxy_config
from tests.conftest import DATA, clearkey_request

W3C = DATA / "clearkey"
# The public key of Shaka Player's ClearKey test stream (Axinom-packaged).
SHAKA_KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72")
SHAKA_KEY = bytes.fromhex("fc35340837310cc0fb53de97e22a69e0")


def w3c(name: str) -> bytes:
    return (W3C / name).read_bytes()


def test_the_w3c_request_example_parses():
    info = parse_clearkey(w3c("w3c_eme_license_request_example.json"))
    assert info.request_type is RequestType.NEW
    assert [b64url_encode(k) for k in info.key_ids] == [
        "LwVHf8JLtPrv2GUXFW2v_A",
        "0DdtU9od-Bh5L3xbv0Xf_A",
    ]
    assert info.details["session_type"] == "temporary"


def test_the_w3c_release_example_is_a_release():
    info = parse_clearkey(w3c("w3c_eme_license_release_example.json"))
    assert info.request_type is RequestType.RELEASE


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\xff\xfe", "UTF-8 JSON"),
        (b"[]", "JSON object"),
        (b'{"kids": []}', "non-empty"),
        (b'{"kids": ["!!!"]}', "base64url"),
        (b'{"kids": ["AAAA"]}', "not 16"),
        (b'{"kids": ["LwVHf8JLtPrv2GUXFW2v_A"], "type": "forever"}', "type must be"),
        (b"[" * 100_000, "JSON"),
    ],
)
def test_bad_clearkey_requests_are_challenge_invalid(body, why):
    with pytest.raises(ProxyError) as raised:
        parse_clearkey(body)
    assert raised.value.reason is Reason.CHALLENGE_INVALID
    assert why in raised.value.detail


def _pipeline(backend: dict, policy: dict | None = None):
    overrides = {"backends": {"clearkey": {"vendor": "clearkey", **backend}}}
    if policy is not None:
        overrides["policies"] = [{"name": "default", "backends": ["clearkey"], **policy}]
    config = proxy_config(overrides)
    del config["backends"]["clearkey"]["key_seed"]
    if "key_seed" in backend:
        config["backends"]["clearkey"]["key_seed"] = backend["key_seed"]
    return build_pipeline(config)


async def test_inline_keys_answer_exactly_the_w3c_license_example(dev_token):
    expected = json.loads(w3c("w3c_eme_license_example.json"))
    [key] = expected["keys"]
    pipeline = _pipeline({"keys": {key["kid"]: "base64:" + key["k"].replace("_", "/") + "=="}})
    challenge = json.dumps({"kids": [key["kid"]], "type": "temporary"}).encode()
    result = await pipeline.acquire(LicenseRequest(challenge=challenge, token=dev_token()))
    assert json.loads(result.license) == expected


async def test_a_keys_file_serves_the_shaka_test_stream_key(tmp_path, dev_token):
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "kty": "oct",
                        "kid": b64url_encode(SHAKA_KID.bytes),
                        "k": b64url_encode(SHAKA_KEY),
                    }
                ]
            }
        )
    )
    pipeline = _pipeline({"keys_file": str(keys_file)})
    result = await pipeline.acquire(
        LicenseRequest(challenge=clearkey_request(SHAKA_KID.bytes), token=dev_token())
    )
    [key] = json.loads(result.license)["keys"]
    assert b64url_decode(key["k"]) == SHAKA_KEY


async def test_a_seed_derives_hmac_sha256_of_the_key_id(dev_token):
    seed = bytes(range(32))
    pipeline = _pipeline({"key_seed": "hex:" + seed.hex()})
    kid = uuid.uuid4().bytes
    result = await pipeline.acquire(
        LicenseRequest(challenge=clearkey_request(kid), token=dev_token())
    )
    [key] = json.loads(result.license)["keys"]
    assert b64url_decode(key["k"]) == hmac.new(seed, kid, hashlib.sha256).digest()[:16]


def test_derived_keys_are_kept_within_a_bound():
    from plugins.vendors.clearkey.adapter import DERIVED_KEYS_KEPT

    seed = bytes(range(32))
    adapter = _pipeline({"key_seed": "hex:" + seed.hex()}).backends["clearkey"].adapter
    kids = [uuid.uuid4().bytes for _ in range(DERIVED_KEYS_KEPT + 10)]
    for kid in kids:
        assert adapter.key_for(kid) == hmac.new(seed, kid, hashlib.sha256).digest()[:16]
    assert adapter.key_for(kids[-1]) == hmac.new(seed, kids[-1], hashlib.sha256).digest()[:16]
    assert 0 < len(adapter._derived) <= DERIVED_KEYS_KEPT


async def test_an_unknown_key_is_refused_by_the_backend(dev_token):
    pipeline = _pipeline({"keys": {str(SHAKA_KID): "hex:" + SHAKA_KEY.hex()}})
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(
            LicenseRequest(challenge=clearkey_request(uuid.uuid4().bytes), token=dev_token())
        )
    assert raised.value.reason is Reason.UPSTREAM_REJECTED
    assert raised.value.metadata == {"vendor_code": "KEY_NOT_FOUND"}


async def test_persistent_sessions_need_a_persistent_policy(dev_token):
    challenge = clearkey_request(SHAKA_KID.bytes, session_type="persistent-license")
    temporary_only = _pipeline({"key_seed": "hex:" + "00" * 16}, {"license": {"persistent": False}})
    with pytest.raises(ProxyError) as raised:
        await temporary_only.acquire(LicenseRequest(challenge=challenge, token=dev_token()))
    assert raised.value.metadata["vendor_code"] == "PERSISTENCE_NOT_ALLOWED"
    persistent = _pipeline({"key_seed": "hex:" + "00" * 16}, {"license": {"persistent": True}})
    result = await persistent.acquire(LicenseRequest(challenge=challenge, token=dev_token()))
    assert json.loads(result.license)["type"] == "persistent-license"


async def test_a_release_is_acknowledged_with_its_key_ids(dev_token):
    pipeline = _pipeline({"key_seed": "hex:" + "00" * 16})
    release = w3c("w3c_eme_license_release_example.json")
    result = await pipeline.acquire(LicenseRequest(challenge=release, token=dev_token()))
    assert json.loads(result.license) == json.loads(w3c("w3c_eme_license_release_ack_example.json"))
    assert result.request_type is RequestType.RELEASE


@pytest.mark.parametrize(
    ("backend", "path"),
    [
        ({}, "backends.clearkey"),
        ({"keys": {"not-a-kid": "hex:" + "00" * 16}}, "backends.clearkey.keys"),
        ({"keys": {str(SHAKA_KID): "hex:00"}}, "backends.clearkey.keys"),
        ({"key_seed": "hex:0011"}, "backends.clearkey"),
        ({"keys_file": "/nonexistent/keys.json"}, "backends.clearkey"),
    ],
)
def test_bad_key_stores_fail_at_start(backend, path):
    with pytest.raises(ConfigError) as raised:
        _pipeline(backend)
    assert path in [p for p, _ in raised.value.errors]
