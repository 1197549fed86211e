"""ClearKey challenges: the W3C examples, release messages, and what is refused."""

from __future__ import annotations

import json

import pytest

from proxy.challenge.clearkey import looks_like_clearkey, parse_clearkey
from proxy.encoding import b64url_decode
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from tests.conftest import DATA, clearkey_request

CK = DATA / "clearkey"
W3C_KIDS = ["LwVHf8JLtPrv2GUXFW2v_A", "0DdtU9od-Bh5L3xbv0Xf_A"]


def refused(body: bytes) -> str:
    with pytest.raises(ProxyError) as raised:
        parse_clearkey(body)
    assert raised.value.reason is Reason.CHALLENGE_INVALID
    return raised.value.detail


def test_the_w3c_license_request():
    body = (CK / "w3c_eme_license_request_example.json").read_bytes()
    info = parse_clearkey(body)
    assert info.drm_system is DrmSystem.CLEARKEY
    assert info.request_type is RequestType.NEW
    assert info.key_ids == tuple(b64url_decode(k) for k in W3C_KIDS)
    assert info.client == {"session_type": "temporary"}
    assert info.payload == body
    assert looks_like_clearkey(body)


@pytest.mark.parametrize(
    "name", ["w3c_eme_license_release_example.json", "w3c_keyids_initdata_format_example.json"]
)
def test_a_message_without_type_is_a_release(name):
    info = parse_clearkey((CK / name).read_bytes())
    assert info.request_type is RequestType.RELEASE
    assert info.key_ids == tuple(b64url_decode(k) for k in W3C_KIDS)


def test_persistent_license_requests():
    kid = b64url_decode(W3C_KIDS[0])
    info = parse_clearkey(clearkey_request(kid, session_type="persistent-license"))
    assert info.details["session_type"] == "persistent-license"


def test_unknown_members_are_warned_about_safely():
    info = parse_clearkey(b'{"kids":["LwVHf8JLtPrv2GUXFW2v_A"],"type":"temporary","\\u001bx":1}')
    assert info.warnings == ["unknown member '?x' ignored"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff", "not UTF-8 JSON"),
        (b"[]", "not a JSON object"),
        (b'{"kids": []}', "non-empty"),
        (b'{"kids": "abc"}', "non-empty"),
        (b'{"kids": [1]}', "not base64url"),
        (b'{"kids": ["AAAA"]}', "not 16"),
        (b'{"kids": ["LwVHf8JLtPrv2GUXFW2v_A"], "type": "forever"}', "type must be"),
        (b'{"kids": ["LwVHf8JLtPrv2GUXFW2v_A"], "type": []}', "type must be"),
        (b'{"kids": ["LwVHf8JLtPrv2GUXFW2v_A"], "type": null}', "type must be"),
        (b"[" * 100_000 + b"]" * 100_000, "not UTF-8 JSON"),
        (b'{"kids": [' + b'"LwVHf8JLtPrv2GUXFW2v_A",' * 64 + b'"x"]}', "more than 64"),
    ],
    ids=[
        "not-utf8",
        "array",
        "empty-kids",
        "kids-not-list",
        "kid-not-string",
        "short-kid",
        "bad-type",
        "unhashable-type",
        "null-type",
        "deep-nesting",
        "too-many",
    ],
)
def test_refusals(body, words):
    assert words in refused(body)


def test_huge_integers_are_refused_not_crashed():
    refused(b'{"kids": ["LwVHf8JLtPrv2GUXFW2v_A"], "x": ' + b"9" * 5000 + b"}")


def test_the_license_itself_is_not_a_request():
    body = (CK / "w3c_eme_license_example.json").read_bytes()
    assert not looks_like_clearkey(body)
    assert "kids" in refused(body)
    assert json.loads(body)["keys"]
