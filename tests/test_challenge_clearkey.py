"""ClearKey challenges: the W3C examples, release messages, and what is refused."""

from __future__ import annotations

import json

import pytest

from proxy.challenge.clearkey import (
    KEY_ID_ENCODING,
    license_json,
    looks_like_clearkey,
    parse_clearkey,
    release_json,
    wants_standard_base64,
)
from proxy.challenge.samples import clearkey_request as sample_request
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


# -- Android's ClearKey CDM before 8.1 ----------------------------------------------------

#: Key ids whose base64 needs "+" and "/": the old Android CDM writes them that way.
ANDROID_KIDS = (bytes.fromhex("fbefbe" + "00" * 13), bytes.fromhex("ffffff" + "11" * 13))


@pytest.mark.parametrize("padded", [False, True])
def test_standard_base64_key_ids_are_read_and_marked(padded):
    body = sample_request(*ANDROID_KIDS, standard_base64=True)
    assert b"+" in body and b"/" in body and b"=" not in body
    if padded:
        body = body.replace(b'",', b'==",').replace(b'"]', b'=="]')
    info = parse_clearkey(body)
    assert info.key_ids == ANDROID_KIDS
    assert info.details[KEY_ID_ENCODING] == "base64"
    assert wants_standard_base64(info)


def test_base64url_and_neutral_key_ids_are_not_marked():
    assert not wants_standard_base64(parse_clearkey(clearkey_request(*ANDROID_KIDS)))
    neutral = bytes(16)  # "AAAAAAAAAAAAAAAAAAAAAA": the same in both encodings
    assert not wants_standard_base64(parse_clearkey(clearkey_request(neutral)))


@pytest.mark.parametrize(
    "kids",
    [
        ['"+-AAAAAAAAAAAAAAAAAAAA"'],  # one key id, both alphabets
        ['"-_AAAAAAAAAAAAAAAAAAAA"', '"+/AAAAAAAAAAAAAAAAAAAA"'],  # one of each
        ['"+/AAAAAAAAAAAAAAAAA*AA"'],
    ],
)
def test_mixed_or_broken_encodings_are_refused(kids):
    body = ('{"kids": [' + ",".join(kids) + '], "type": "temporary"}').encode()
    with pytest.raises(ProxyError) as caught:
        parse_clearkey(body)
    assert caught.value.reason is Reason.CHALLENGE_INVALID


def test_the_license_is_written_in_the_encoding_the_cdm_reads():
    pairs = [(ANDROID_KIDS[0], bytes.fromhex("fbefbe" * 5 + "fb"))]
    old = json.loads(license_json(pairs, "temporary", standard_base64=True))
    # ExoPlayer's ClearKeyUtil mapping: standard alphabet, no padding, only k/kid/kty.
    assert old == {"keys": [{"kty": "oct", "kid": "++++AAAAAAAAAAAAAAAAAA", "k": "+" * 21 + "w"}]}
    new = json.loads(license_json(pairs, "temporary"))
    assert new["keys"][0]["kid"] == "----AAAAAAAAAAAAAAAAAA" and new["type"] == "temporary"
    assert json.loads(release_json(ANDROID_KIDS[:1], standard_base64=True)) == {
        "kids": ["++++AAAAAAAAAAAAAAAAAA"]
    }
