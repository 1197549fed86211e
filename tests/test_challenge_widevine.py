"""Widevine challenges: every ContentIdentification form, request types, privacy mode,
service-certificate requests, real pssh boxes, and what is refused."""

from __future__ import annotations

import json
import uuid

import pytest

from proxy.challenge import samples
from proxy.challenge.pssh import PLAYREADY_SYSTEM_ID, WIDEVINE_SYSTEM_ID, parse_pssh_boxes
from proxy.challenge.samples import pb_bytes, pb_varint, widevine_license_request
from proxy.challenge.widevine import looks_like_widevine, parse_widevine
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from tests.conftest import DATA

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
KID2 = uuid.UUID("a2c786d0-f9ef-4cb3-b333-cd323a4284a5").bytes
PSSH_INDEX = json.loads((DATA / "pssh" / "index.json").read_text())


def refused(body: bytes) -> str:
    with pytest.raises(ProxyError) as raised:
        parse_widevine(body)
    assert raised.value.reason is Reason.CHALLENGE_INVALID
    return raised.value.detail


def test_service_certificate_request_is_recognised():
    info = parse_widevine(b"\x08\x04")
    assert info.drm_system is DrmSystem.WIDEVINE
    assert info.request_type is RequestType.SERVICE_CERTIFICATE
    assert info.key_ids == ()
    assert info.payload == b"\x08\x04"
    assert looks_like_widevine(b"\x08\x04")


def test_pssh_data_form_gives_key_ids_content_id_and_scheme():
    body = widevine_license_request(
        key_ids=[KID, KID2, KID], content_id=b"movie-1", protection_scheme="cbcs"
    )
    info = parse_widevine(body)
    assert info.request_type is RequestType.NEW
    assert info.key_ids == (KID, KID2)  # duplicates dropped, order kept
    assert info.key_id_uuids[0] == "4060a865-8878-4267-9cbf-91ae5bae1e72"
    assert info.content_id == "movie-1"
    assert info.details["widevine_content_id"] == b"movie-1"
    assert info.details["protection_scheme"] == "cbcs"
    assert info.details["widevine_content_form"] == "widevine_pssh_data"
    assert info.payload == body
    assert info.warnings == []


def test_client_facts_come_from_the_client_id():
    info = parse_widevine(widevine_license_request(key_ids=[KID]))
    client = info.client
    assert client["privacy_mode"] == "false"
    assert client["company_name"] == "Example"
    assert client["widevine_cdm_version"] == "4.10.2830.0"
    assert client["token_type"] == "drm_device_certificate"
    assert client["max_hdcp_version"] == "v2.2"
    assert client["oem_crypto_api_version"] == "16"
    assert client["protocol_version"] == "2.1"
    assert client["license_type"] == "streaming"


def test_a_client_cannot_forge_what_the_proxy_worked_out_or_inject_control_characters():
    body = widevine_license_request(
        key_ids=[KID],
        client_info={"privacy_mode": "true", "model_name": "evil\r\nX-Injected: 1\x1b[31m"},
    )
    client = parse_widevine(body).client
    assert client["privacy_mode"] == "false"
    assert client["model_name"] == "evil??X-Injected: 1?[31m"


def test_privacy_mode_is_reported_with_the_service_provider():
    info = parse_widevine(widevine_license_request(key_ids=[KID], privacy=True))
    assert info.client["privacy_mode"] == "true"
    assert info.client["service_provider_id"] == "license.example.com"
    assert info.details["widevine_service_certificate_serial"] == b"\x42" * 16
    assert "company_name" not in info.client
    assert info.key_ids == (KID,)


def test_webm_key_id_form():
    info = parse_widevine(widevine_license_request(key_ids=[KID], form="webm"))
    assert info.key_ids == (KID,)
    assert info.details["widevine_content_form"] == "webm_key_id"


@pytest.mark.parametrize(("wire", "expected"), [(2, RequestType.RENEWAL), (3, RequestType.RELEASE)])
def test_existing_license_form_for_renewal_and_release(wire, expected):
    body = widevine_license_request(form="existing_license", request_type=wire, session_id=b"s-42")
    info = parse_widevine(body)
    assert info.request_type is expected
    assert info.key_ids == ()
    assert info.details["widevine_license_session_id"] == b"s-42"
    assert info.details["widevine_license_request_id"] == b"req-1"
    assert info.details["widevine_license_version"] == 1
    assert info.details["widevine_seconds_since_started"] == 30
    assert info.warnings == []


def test_a_missing_request_type_means_new_as_in_proto2():
    info = parse_widevine(widevine_license_request(key_ids=[KID], request_type=None))
    assert info.request_type is RequestType.NEW


def test_a_renewal_without_an_existing_license_is_read_with_a_warning():
    info = parse_widevine(widevine_license_request(key_ids=[KID], request_type=2))
    assert info.request_type is RequestType.RENEWAL
    assert any("existing license" in w for w in info.warnings)


def test_init_data_as_a_whole_widevine_pssh_box_v0():
    info = parse_widevine(
        widevine_license_request(key_ids=[KID], content_id=b"c-1", form="init_data")
    )
    assert info.key_ids == (KID,)
    assert info.content_id == "c-1"
    assert info.details["widevine_init_data_type"] == "cenc"


def test_init_data_as_a_v1_box_uses_the_header_key_ids_too():
    box = samples.pssh_box(WIDEVINE_SYSTEM_ID, samples.widevine_pssh_data([KID2]), key_ids=[KID])
    info = parse_widevine(widevine_license_request(form="init_data", init_data=box))
    assert info.key_ids == (KID, KID2)


def test_init_data_as_bare_widevine_pssh_data():
    bare = samples.widevine_pssh_data([KID], content_id=b"bare")
    info = parse_widevine(widevine_license_request(form="init_data", init_data=bare))
    assert info.key_ids == (KID,)
    assert info.content_id == "bare"


def test_init_data_of_webm_type_is_the_key_id():
    content = pb_bytes(4, pb_varint(1, 2) + pb_bytes(2, KID))
    info = parse_widevine(widevine_license_request(content=content))
    assert info.key_ids == (KID,)
    assert info.details["widevine_init_data_type"] == "webm"


def test_init_data_with_only_a_playready_box_warns_and_names_no_key_id():
    box = samples.pssh_box(PLAYREADY_SYSTEM_ID, b"\x00" * 10)
    info = parse_widevine(widevine_license_request(form="init_data", init_data=box))
    assert info.key_ids == ()
    assert any("no Widevine" in w for w in info.warnings)


def test_binary_content_ids_are_shown_in_hex():
    info = parse_widevine(widevine_license_request(key_ids=[KID], content_id=b"\x00\xff"))
    assert info.content_id == "00ff"
    assert info.details["widevine_content_id"] == b"\x00\xff"


# -- real pssh boxes (shaka-player and web-platform-tests assets) -------------------------


def _widevine_vectors():
    for name, entry in PSSH_INDEX.items():
        for box in entry["boxes"]:
            if box["system"] == "widevine":
                kids = [k["hex"] for k in box["data"]["widevine_pssh_data"]["key_ids"]]
                yield pytest.param(name, list(dict.fromkeys(kids)), id=name)


@pytest.mark.parametrize(("name", "expected"), list(_widevine_vectors()))
def test_real_pssh_boxes_as_cenc_init_data(name, expected):
    init_data = (DATA / "pssh" / f"{name}.bin").read_bytes()
    info = parse_widevine(widevine_license_request(form="init_data", init_data=init_data))
    assert [k.hex() for k in info.key_ids] == expected


@pytest.mark.parametrize(("name", "expected"), list(_widevine_vectors()))
def test_real_pssh_payloads_in_the_pssh_data_form(name, expected):
    boxes = parse_pssh_boxes((DATA / "pssh" / f"{name}.bin").read_bytes())
    payload = next(b.data for b in boxes if b.system == "widevine")
    content = pb_bytes(1, pb_bytes(1, payload))
    info = parse_widevine(widevine_license_request(content=content))
    assert [k.hex() for k in info.key_ids] == expected


def test_the_wpt_pssh_gives_its_provider_and_content_id():
    init_data = (DATA / "pssh" / "wpt_content_metadata_mp4basic_initdata.bin").read_bytes()
    info = parse_widevine(widevine_license_request(form="init_data", init_data=init_data))
    expected = PSSH_INDEX["wpt_content_metadata_mp4basic_initdata"]["boxes"][0]["data"]
    assert info.details["widevine_provider"] == "castlabs"
    assert info.content_id == expected["widevine_pssh_data"]["content_id"]["text"]


# -- refusals -----------------------------------------------------------------------------


def test_garbage_is_refused():
    assert "not a Widevine SignedMessage" in refused(b"\xff\xff\xff")


def test_a_license_response_is_not_a_request():
    assert "not a license request" in refused(pb_varint(1, 2) + pb_bytes(2, b""))


def test_a_signed_message_without_msg_is_refused():
    assert "no license request" in refused(b"\x08\x01")


def test_a_request_without_content_is_refused():
    body = pb_varint(1, 1) + pb_bytes(2, pb_varint(3, 1))
    assert "names no content" in refused(body)


def test_an_unknown_request_type_is_refused():
    body = widevine_license_request(key_ids=[KID], request_type=9)
    assert "request type 9" in refused(body)


def test_a_key_id_of_the_wrong_length_is_refused():
    body = widevine_license_request(key_ids=[b"short"])
    assert "not 16" in refused(body)


def test_too_many_key_ids_are_refused():
    kids = [i.to_bytes(16, "big") for i in range(65)]
    assert "more than 64" in refused(widevine_license_request(key_ids=kids))


def test_a_truncated_pssh_box_in_init_data_is_refused():
    box = samples.pssh_box(WIDEVINE_SYSTEM_ID, samples.widevine_pssh_data([KID]))
    assert "pssh" in refused(widevine_license_request(form="init_data", init_data=box[:-3]))


def test_pssh_data_that_is_not_protobuf_is_refused():
    content = pb_bytes(1, pb_bytes(1, b"\xff\xff\xff"))
    assert "not Widevine pssh data" in refused(widevine_license_request(content=content))
