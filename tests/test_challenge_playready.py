"""PlayReady challenges: the SOAP body and the PlayReadyKeyMessage wrapper, WRMHEADER
4.0 to 4.3 from Microsoft's published examples, key id byte order, and XML attacks."""

from __future__ import annotations

import base64
import json
import re
import struct
import uuid

import pytest

from proxy.challenge import samples
from proxy.challenge.playready import decode_key_id, looks_like_playready, parse_playready
from proxy.challenge.pssh import parse_pssh_boxes
from proxy.challenge.xmlsafe import MAX_DEPTH
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from tests.conftest import DATA

PR = DATA / "playready"
INDEX = json.loads((PR / "index.json").read_text())
PSSH_INDEX = json.loads((DATA / "pssh" / "index.json").read_text())
KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes


def refused(body: bytes) -> str:
    with pytest.raises(ProxyError) as raised:
        parse_playready(body)
    assert raised.value.reason is Reason.CHALLENGE_INVALID
    return raised.value.detail


def uuids(info) -> list[str]:
    return info.key_id_uuids


def test_the_published_acquire_license_request():
    body = (PR / "ms_docs_license_server_AcquireLicense_request.xml").read_bytes()
    info = parse_playready(body)
    expected = INDEX["ms_docs_license_server_AcquireLicense_request.xml"]
    assert info.drm_system is DrmSystem.PLAYREADY
    assert info.request_type is RequestType.NEW
    assert uuids(info) == [k["uuid_from_le_guid"] for k in expected["kids"]]
    assert info.client == {"protocol_version": "1", "client_version": "3.1.0.1017"}
    assert info.details["playready_custom_data"] == "User=Roland"
    assert info.details["playready_header_version"] == "4.0.0.0"
    assert info.details["protection_scheme"] == "cenc"
    assert info.details["playready_client_time"] == 1446224160
    assert info.payload == body
    assert looks_like_playready(body)


def _published_headers():
    for name, entry in INDEX.items():
        if "wrmheader" in name and name.endswith(".xml") and entry["kids"]:
            yield pytest.param(name, [k["uuid_from_le_guid"] for k in entry["kids"]], id=name)


@pytest.mark.parametrize(("name", "expected"), list(_published_headers()))
def test_published_headers_of_every_version_inside_a_challenge(name, expected):
    header = (PR / name).read_text()
    info = parse_playready(samples.playready_challenge(header))
    assert uuids(info) == expected
    assert info.details["playready_header_version"] == INDEX[name]["wrmheader_versions"][0]
    assert info.warnings == []


def test_the_4_1_template_with_a_real_key_id():
    template = (PR / "ms_docs_header_spec_08_wrmheader_4.1.0.0_TEMPLATE.xml").read_text()
    header = template.replace("base64-encoded guid", samples.playready_key_id(KID), 1)
    header = header.replace('CHECKSUM="base64-encoded value" ', "")
    info = parse_playready(samples.playready_challenge(header))
    assert info.key_ids == (KID,)
    assert info.details["playready_header_version"] == "4.1.0.0"


@pytest.mark.parametrize(
    "name",
    [
        "ms_docs_header_spec_05_wrmheader_4.3.0.0_TEMPLATE.xml",
        "ms_docs_header_spec_07_wrmheader_4.2.0.0_TEMPLATE.xml",
        "ms_docs_header_spec_08_wrmheader_4.1.0.0_TEMPLATE.xml",
        "ms_docs_header_spec_10_wrmheader_4.0.0.0_TEMPLATE.xml",
    ],
)
def test_templates_with_placeholder_key_ids_are_refused(name):
    header = (PR / name).read_text()
    assert "KID" in refused(samples.playready_challenge(header))


def test_the_header_syntax_the_spec_rejects_is_refused():
    snippet = (PR / "ms_docs_header_spec_02_SYNTAX_SNIPPET_NOT_supported_malformed.xml").read_text()
    assert "not well-formed" in refused(samples.playready_challenge(snippet))


def _header_from_pro(pro: bytes) -> str:
    """The WRMHEADER of a PlayReady Object: length, record count, then {type, length, value}."""
    length, count = struct.unpack_from("<IH", pro, 0)
    assert length == len(pro)
    offset = 6
    for _ in range(count):
        kind, size = struct.unpack_from("<HH", pro, offset)
        offset += 4
        if kind == 1:
            return pro[offset : offset + size].decode("utf-16-le")
        offset += size
    raise AssertionError("no PlayReady header record")


def test_the_header_of_the_published_playready_object():
    pro = (PR / "ms_docs_header_spec_PRO_wrmheader_4.0.0.0.bin").read_bytes()
    info = parse_playready(samples.playready_challenge(_header_from_pro(pro)))
    expected = INDEX["ms_docs_header_spec_PRO_wrmheader_4.0.0.0.bin"]["kids"]
    assert uuids(info) == [k["uuid_from_le_guid"] for k in expected]
    assert info.details["playready_la_url"].startswith("https://profficialsite.")


def _playready_pssh_vectors():
    for name, entry in PSSH_INDEX.items():
        for box in entry["boxes"]:
            if box["system"] == "playready":
                kids = [k["uuid"] for r in box["data"]["records"] for k in r["kids"]]
                yield pytest.param(name, kids, id=name)


@pytest.mark.parametrize(("name", "expected"), list(_playready_pssh_vectors()))
def test_headers_from_real_playready_pssh_boxes(name, expected):
    boxes = parse_pssh_boxes((DATA / "pssh" / f"{name}.bin").read_bytes())
    pro = next(b.data for b in boxes if b.system == "playready")
    info = parse_playready(samples.playready_challenge(_header_from_pro(pro)))
    assert uuids(info) == expected


def test_key_ids_are_little_endian_guids_turned_canonical():
    # VENDOR_FACTS 6(b): base64 eFYhQzQSNBISNBI0EjQSNg== is 43215678-1234-1234-1234-123412341236.
    assert str(uuid.UUID(bytes=decode_key_id("eFYhQzQSNBISNBI0EjQSNg=="))) == (
        "43215678-1234-1234-1234-123412341236"
    )


@pytest.mark.parametrize("version", ["4.0.0.0", "4.1.0.0", "4.2.0.0", "4.3.0.0"])
def test_built_headers_of_every_version(version):
    kids = [KID] if version in ("4.0.0.0", "4.1.0.0") else [KID, uuid.uuid4().bytes]
    info = parse_playready(samples.playready_challenge(samples.wrm_header(version, kids)))
    assert info.key_ids == tuple(kids)


def test_aescbc_headers_say_cbcs():
    info = parse_playready(
        samples.playready_challenge(samples.wrm_header("4.3.0.0", [KID], algid="AESCBC"))
    )
    assert info.details["protection_scheme"] == "cbcs"


def test_a_header_of_an_unknown_version_is_read_with_a_warning():
    header = samples.wrm_header("4.3.0.0", [KID]).replace("4.3.0.0", "4.9.0.0")
    info = parse_playready(samples.playready_challenge(header))
    assert info.key_ids == (KID,)
    assert any("4.9.0.0" in w for w in info.warnings)


def test_a_key_id_where_its_version_does_not_put_it_warns():
    header = samples.wrm_header("4.3.0.0", [KID]).replace('version="4.3.0.0"', 'version="4.0.0.0"')
    info = parse_playready(samples.playready_challenge(header))
    assert info.key_ids == (KID,)
    assert any("does not put them" in w for w in info.warnings)


def test_a_header_with_no_key_id_warns():
    header = samples.wrm_header("4.3.0.0", []).replace("<KIDS></KIDS>", "")
    info = parse_playready(samples.playready_challenge(header))
    assert info.key_ids == ()
    assert any("no key id" in w for w in info.warnings)


def test_custom_data_with_markup_is_kept_for_vendors():
    custom = (
        '<CustomData xmlns="http://schemas.microsoft.com/Azure/MediaServices/KeyDelivery/'
        'PlayReadyCustomData/v1"><Token>Bearer=abc</Token></CustomData>'
    )
    soap = samples.playready_challenge(samples.wrm_header("4.0.0.0", [KID]))
    soap = soap.replace(b"<LicenseNonce>", custom.encode() + b"<LicenseNonce>")
    info = parse_playready(soap)
    assert "Bearer=abc" in info.details["playready_custom_data"]
    assert "Bearer=abc" not in json.dumps(info.client)


# -- the PlayReadyKeyMessage wrapper ------------------------------------------------------


@pytest.mark.parametrize("bom", [True, False])
def test_the_utf16_key_message_is_unwrapped_to_its_soap_body(bom):
    soap = (PR / "ms_docs_license_server_AcquireLicense_request.xml").read_bytes()
    wrapped = samples.playready_key_message(soap, bom=bom)
    assert looks_like_playready(wrapped)
    info = parse_playready(wrapped)
    assert info.payload == soap
    assert info.details["playready_unwrapped"] is True
    assert uuids(info) == ["33e0008c-c444-4770-9899-a321e079dd36"]


def test_a_utf8_key_message_is_unwrapped_too():
    soap = samples.playready_challenge(samples.wrm_header("4.2.0.0", [KID]))
    wrapped = samples.playready_key_message(soap, bom=False).decode("utf-16-le").encode()
    assert parse_playready(wrapped).payload == soap


def test_a_utf16_soap_body_is_read():
    soap = samples.playready_challenge(samples.wrm_header("4.2.0.0", [KID]))
    text = soap.decode().replace('encoding="utf-8"', 'encoding="utf-16"')
    assert parse_playready(b"\xff\xfe" + text.encode("utf-16-le")).key_ids == (KID,)


def test_a_key_message_of_another_kind_is_refused():
    soap = samples.playready_challenge(samples.wrm_header("4.2.0.0", [KID]))
    wrapped = samples.playready_key_message(soap).decode("utf-16")
    wrapped = wrapped.replace('type="LicenseAcquisition"', 'type="IndividualizationRequest"')
    assert "not a license acquisition" in refused(wrapped.encode("utf-16"))


def test_a_key_message_whose_challenge_is_not_base64_is_refused():
    wrapped = samples.playready_key_message(b"x").decode("utf-16")
    wrapped = re.sub(r"(<Challenge[^>]*>)[^<]*", r"\1@@@", wrapped)
    assert "not base64" in refused(wrapped.encode("utf-16"))


# -- refusals and attacks -----------------------------------------------------------------


def test_another_soap_action_is_refused():
    soap = samples.playready_challenge(samples.wrm_header("4.2.0.0", [KID]))
    soap = soap.replace(b"AcquireLicense", b"AcknowledgeLicense")
    assert "not an AcquireLicense request" in refused(soap)


def test_a_challenge_without_a_header_is_refused():
    soap = samples.playready_challenge("<Nothing/>")
    assert "no WRMHEADER" in refused(soap)


def test_xml_that_is_not_soap_is_refused():
    assert "not a SOAP envelope" in refused(b"<html><body/></html>")


def test_a_key_id_that_is_not_16_bytes_is_refused():
    header = samples.wrm_header("4.0.0.0", [KID]).replace(
        samples.playready_key_id(KID), base64.b64encode(b"short").decode()
    )
    assert "not 16" in refused(samples.playready_challenge(header))


def test_entity_expansion_is_refused():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Envelope>&lol2;</Envelope>'
    )
    assert "DTD" in refused(bomb)


def test_external_entities_are_refused():
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<Envelope>&x;</Envelope>"
    )
    detail = refused(xxe)
    assert "DTD" in detail
    assert "root:" not in detail


def test_deep_nesting_is_refused():
    depth = MAX_DEPTH + 1
    body = b"<a>" * depth + b"</a>" * depth
    assert "nests deeper" in refused(body)


def test_too_many_elements_are_refused():
    body = b"<Envelope>" + b"<x/>" * 5000 + b"</Envelope>"
    assert "elements" in refused(body)


def test_invalid_utf16_is_refused():
    assert "UTF-16" in refused(b"\xff\xfe<\x00\x00\xd8")
