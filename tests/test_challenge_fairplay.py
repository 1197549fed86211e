"""FairPlay challenges: raw SPC, spc= form and JSON all give the raw SPC; the content
id comes from the request or the form by a vendor convention."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from plugins.vendors.axinom.fairplay import CONVENTION as AXINOM
from plugins.vendors.verimatrix.fairplay import CONVENTION as VERIMATRIX
from proxy.challenge import samples
from proxy.challenge.fairplay import GENERIC, looks_like_fairplay, parse_fairplay, read_content_id
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType

SPC = samples.fairplay_spc()
GUID = "4060a865-8878-4267-9cbf-91ae5bae1e72"
KID = uuid.UUID(GUID).bytes


def refused(body: bytes, reason: Reason = Reason.CHALLENGE_INVALID, **kwargs) -> str:
    with pytest.raises(ProxyError) as raised:
        parse_fairplay(body, **kwargs)
    assert raised.value.reason is reason
    return raised.value.detail


@pytest.mark.parametrize(
    ("body", "framing"),
    [
        (SPC, "raw"),
        (samples.fairplay_form(SPC), "form"),
        (samples.fairplay_form(SPC, escape=False), "form"),
        (samples.fairplay_json(SPC), "json"),
    ],
    ids=["raw", "form", "form-unescaped", "json"],
)
def test_every_framing_gives_the_raw_spc(body, framing):
    assert looks_like_fairplay(body)
    info = parse_fairplay(body, content_id="skd://movie-1")
    assert info.drm_system is DrmSystem.FAIRPLAY
    assert info.request_type is RequestType.NEW
    assert info.payload == SPC
    assert info.details["fairplay_framing"] == framing
    assert info.details["fairplay_spc_version"] == 1
    assert info.client == {"spc_version": "1"}
    assert info.details["fairplay_certificate_hash"] == bytes(range(20)).hex()
    assert info.content_id == "movie-1"


def test_spc_version_2():
    info = parse_fairplay(samples.fairplay_spc(version=2), content_id="x")
    assert info.client["spc_version"] == "2"


def test_base64_with_line_breaks_and_url_safe_alphabet_is_accepted():
    b64 = base64.urlsafe_b64encode(SPC).decode().rstrip("=")
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    assert parse_fairplay(json.dumps({"spc": wrapped}).encode()).payload == SPC


def test_the_form_asset_id_is_the_content_id_when_the_request_names_none():
    info = parse_fairplay(samples.fairplay_form(SPC, asset_id="asset 7"))
    assert info.details["fairplay_asset_id"] == "asset 7"
    assert info.content_id == "asset 7"


def test_the_castlabs_bare_content_id_field():
    body = samples.fairplay_form(SPC) + b"&my-content"
    assert parse_fairplay(body).content_id == "my-content"


def test_the_request_content_id_wins_over_the_asset_id():
    info = parse_fairplay(samples.fairplay_form(SPC, asset_id="a"), content_id="skd://b")
    assert info.content_id == "b"
    assert info.details["fairplay_asset_id"] == "a"


def test_json_asset_id_and_unknown_members():
    info = parse_fairplay(samples.fairplay_json(SPC, assetId="a-1", extra="x"))
    assert info.content_id == "a-1"
    assert any("extra" in w for w in info.warnings)


def test_no_content_id_is_a_warning():
    info = parse_fairplay(SPC)
    assert info.content_id is None
    assert any("content_id" in w for w in info.warnings)


# -- content id conventions --------------------------------------------------------------


def test_axinom_key_uri_gives_the_key_id_and_iv():
    iv = "0123456789abcdef0123456789ABCDEF"
    info = parse_fairplay(SPC, content_id=f"skd://{GUID.upper()}:{iv}", convention=AXINOM)
    assert info.key_ids == (KID,)
    assert info.content_id == GUID
    assert info.details["fairplay_iv"] == bytes.fromhex(iv)
    assert info.details["fairplay_key_uri"] == f"skd://{GUID.upper()}:{iv}"


def test_axinom_without_skd_prefix_or_iv():
    assert parse_fairplay(SPC, content_id=GUID, convention=AXINOM).key_ids == (KID,)


def test_axinom_asset_id_from_the_form():
    info = parse_fairplay(samples.fairplay_form(SPC, asset_id=GUID), convention=AXINOM)
    assert info.key_ids == (KID,)


def test_a_request_content_id_breaking_the_axinom_convention_is_request_invalid():
    detail = refused(SPC, Reason.REQUEST_INVALID, content_id="skd://movie-1", convention=AXINOM)
    assert "Axinom" in detail


def test_a_form_asset_id_breaking_the_axinom_convention_is_challenge_invalid():
    body = samples.fairplay_form(SPC, asset_id="movie-1")
    assert "assetId" in refused(body, convention=AXINOM)


def test_an_axinom_iv_that_is_not_hex_is_refused():
    with pytest.raises(ValueError, match="IV"):
        read_content_id(f"skd://{GUID}:zz", AXINOM)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("skd://movie-1?token=abc", "movie-1"),
        ("skd://movie-1", "movie-1"),
        ("movie-1", "movie-1"),
    ],
)
def test_verimatrix_strips_scheme_and_query(uri, expected):
    assert read_content_id(uri, VERIMATRIX).content_id == expected


@pytest.mark.parametrize(
    ("uri", "expected", "key_id"),
    [
        ("skd://host/path/asset-9", "asset-9", None),
        ("skd://host/path/asset-9/", "asset-9", None),
        ("skd://host/FairPlay/?kid=" + GUID, "kid=" + GUID, KID),
        ("skd://" + GUID, GUID, KID),
        ("skd://host?asset-3", "asset-3", None),
    ],
)
def test_generic_takes_the_query_else_the_last_path_segment(uri, expected, key_id):
    found = read_content_id(uri, GENERIC)
    assert found.content_id == expected
    assert found.key_id == key_id


@pytest.mark.parametrize("bad", ["", "x" * 1025, "skd://a\x00b", "skd://"])
def test_unusable_content_ids_are_refused(bad):
    with pytest.raises(ValueError):
        read_content_id(bad, GENERIC)


# -- refusals -----------------------------------------------------------------------------


def test_a_certificate_sent_by_mistake_is_named():
    assert "certificate" in refused(b"\x30\x82\x04\x00" + b"\x00" * 300)


def test_an_spc_shorter_than_its_header_is_refused():
    assert "at least 176" in refused(SPC[:100])


def test_an_unknown_spc_version_is_refused():
    assert "version 3" in refused(b"\x00\x00\x00\x03" + SPC[4:])


def test_a_payload_length_that_disagrees_is_a_warning():
    info = parse_fairplay(SPC + b"extra", content_id="x")
    assert any("payload length" in w for w in info.warnings)


@pytest.mark.parametrize(
    "body",
    [
        b"spc=@@@@",
        b"spc=%FF%FE",
        b"assetId=x",
        b"spc=" + base64.b64encode(SPC) + b"&spc=" + base64.b64encode(SPC),
        b"a&" * 10 + b"spc=x",
        "spc=é".encode(),
    ],
    ids=["not-base64", "bad-escape", "no-spc", "two-spc", "many-fields", "not-ascii"],
)
def test_bad_forms_are_refused(body):
    refused(body)


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"spc": 1}', b'{"spc": "@@"}', b'{"spc": "' + b"A" * 8 + b'"}']
)
def test_bad_json_is_refused(body):
    refused(body)
