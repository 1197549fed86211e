"""Init data read by ``license-proxy inspect`` and ``InspectChallenge``: pssh boxes (v0/v1,
any system), PlayReady Header Objects, WRMHEADERs and W3C keyids, from the real vectors;
and refused, with a sentence saying what it is, where a license challenge is expected."""

from __future__ import annotations

import base64
import json
import struct
import uuid

import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.challenge import samples
from proxy.challenge.initdata import (
    KEYIDS,
    PLAYREADY_OBJECT,
    PSSH,
    WRMHEADER,
    looks_like_init_data,
    parse_init_data,
)
from proxy.challenge.pssh import WIDEVINE_SYSTEM_ID
from proxy.cli import main
from proxy.drm import DrmSystem
from proxy.errors import ProxyError, Reason
from tests.conftest import DATA

PSSH_INDEX = json.loads((DATA / "pssh" / "index.json").read_text())
PLAYREADY_INDEX = json.loads((DATA / "playready" / "index.json").read_text())
UNKNOWN_SYSTEM = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff").bytes


def _box_key_ids(box: dict) -> list[str]:
    """The key ids the index says a box names (its header, Widevine data, PlayReady header)."""
    data = box["data"]
    kids = [k["uuid"] for k in box["kids"]]
    kids += [k["uuid"] for k in data.get("widevine_pssh_data", {}).get("key_ids", [])]
    for record in data.get("records", []):
        kids += [k["uuid"] for k in record.get("kids", [])]
    return list(dict.fromkeys(kids))


@pytest.mark.parametrize("name", sorted(PSSH_INDEX))
def test_real_pssh_init_data_names_its_systems_and_key_ids(name):
    info = parse_init_data((DATA / "pssh" / f"{name}.bin").read_bytes())
    assert info is not None and info.format == PSSH
    expected = PSSH_INDEX[name]["boxes"]
    assert [s.system for s in info.systems] == [b["system"] for b in expected]
    assert [s.system_uuid for s in info.systems] == [b["system_id"] for b in expected]
    assert [[str(uuid.UUID(bytes=k)) for k in s.key_ids] for s in info.systems] == [
        _box_key_ids(b) for b in expected
    ]
    systems = {b["system"] for b in expected}
    assert info.drm_system == (DrmSystem(systems.pop()) if len(systems) == 1 else None)


def test_the_w3c_common_pssh_is_clearkey_with_its_header_key_ids():
    info = parse_init_data(
        (DATA / "clearkey" / "w3c_cenc_initdata_common_pssh_example.bin").read_bytes()
    )
    assert info is not None and info.drm_system is DrmSystem.CLEARKEY
    [system] = info.systems
    assert (system.pssh_version, system.key_ids) == (1, (b"0123456789012345", b"ABCDEFGHIJKLMNOP"))


def test_the_playready_header_object_vector():
    info = parse_init_data(
        (DATA / "playready" / "ms_docs_header_spec_PRO_wrmheader_4.0.0.0.bin").read_bytes()
    )
    assert info is not None and info.format == PLAYREADY_OBJECT
    [system] = info.systems
    expected = PLAYREADY_INDEX["ms_docs_header_spec_PRO_wrmheader_4.0.0.0.bin"]
    assert [str(uuid.UUID(bytes=k)) for k in system.key_ids] == [
        k["uuid_from_le_guid"] for k in expected["kids"]
    ]
    assert system.details["playready_header_version"] == "4.0.0.0"


@pytest.mark.parametrize(
    "name",
    sorted(
        n
        for n, entry in PLAYREADY_INDEX.items()
        if "_wrmheader_" in n and n.endswith(".xml") and "TEMPLATE" not in n
    ),
)
def test_real_wrmheaders_list_their_key_ids(name):
    body = (DATA / "playready" / name).read_bytes()
    info = parse_init_data(body)
    assert info is not None and info.format == WRMHEADER
    assert info.drm_system is DrmSystem.PLAYREADY
    assert info.key_id_uuids == [k["uuid_from_le_guid"] for k in PLAYREADY_INDEX[name]["kids"]]
    # The same header as UTF-16LE (how a PlayReady Object carries it) reads the same.
    text = body.decode("utf-8").removeprefix("\ufeff")
    assert parse_init_data(text.encode("utf-16-le")).key_ids == info.key_ids  # type: ignore[union-attr]


def test_keyids_init_data_only_when_no_drm_is_named():
    body = (DATA / "clearkey" / "w3c_keyids_initdata_format_example.json").read_bytes()
    info = parse_init_data(body)
    assert info is not None and info.format == KEYIDS
    assert info.drm_system is DrmSystem.CLEARKEY and len(info.key_ids) == 2
    assert "release message" in info.warnings[0]
    assert parse_init_data(body, DrmSystem.CLEARKEY) is None
    assert parse_init_data(samples.clearkey_request(bytes(16))) is None


def test_any_system_id_and_version_one_boxes():
    kid = bytes(range(16))
    body = samples.pssh_box(UNKNOWN_SYSTEM, b"opaque", key_ids=[kid]) + samples.pssh_box(
        WIDEVINE_SYSTEM_ID, samples.widevine_pssh_data([kid], content_id=b"movie-1")
    )
    info = parse_init_data(body)
    assert info is not None
    unknown, widevine = info.systems
    assert (unknown.system, unknown.pssh_version, unknown.key_ids) == ("unknown", 1, (kid,))
    assert unknown.details == {"data_bytes": 6}
    assert (widevine.system, widevine.content_id, widevine.key_ids) == (
        "widevine",
        "movie-1",
        (kid,),
    )
    assert info.key_ids == (kid,) and info.drm_system is None


def test_unreadable_widevine_data_is_a_warning_not_a_failure():
    info = parse_init_data(samples.pssh_box(WIDEVINE_SYSTEM_ID, b"\xff\xff\xff"))
    assert info is not None and info.warnings == ["box 0: the Widevine pssh data is unreadable"]


@pytest.mark.parametrize(
    "body",
    [
        samples.pssh_box(WIDEVINE_SYSTEM_ID, b"abc")[:-2],  # truncated box
        struct.pack("<IHHH", 12, 1, 1, 50) + b"<\x00",  # PRO record longer than the object
        struct.pack("<IHHH", 14, 1, 1, 4) + "<a/>".encode("utf-16-le")[:4],  # not a WRMHEADER
        b"<WRMHEADER><DATA>",  # not well-formed
    ],
)
def test_broken_init_data_is_challenge_invalid(body):
    assert looks_like_init_data(body)
    with pytest.raises(ProxyError) as caught:
        parse_init_data(body)
    assert caught.value.reason is Reason.CHALLENGE_INVALID


async def test_inspect_challenge_reads_init_data_on_both_transports(proxy_factory, http):
    proxy = await proxy_factory()
    body = (DATA / "pssh" / "wpt_content_metadata_mp4basic_initdata.bin").read_bytes()
    response = await proxy.stub().InspectChallenge(pb.InspectChallengeRequest(challenge=body))
    assert response.format == "pssh"
    assert response.drm_system == pb.DRM_SYSTEM_UNSPECIFIED
    assert list(response.key_id_uuids) == ["ad13f9ea-2be6-98b8-75f5-04a8e3ccea64"]
    assert [s.system for s in response.protection_systems] == ["widevine", "playready"]
    assert response.protection_systems[1].details["playready_header_version"] == "4.0.0.0"
    async with http.post(
        f"{proxy.http_url}/v1/challenge:inspect",
        json={"challenge": base64.b64encode(body).decode()},
    ) as answer:
        doc = await answer.json()
    assert doc["format"] == "pssh" and doc["protectionSystems"][0]["system"] == "widevine"
    # A license challenge says so too.
    response = await proxy.stub().InspectChallenge(
        pb.InspectChallengeRequest(challenge=samples.clearkey_request(bytes(16)))
    )
    assert response.format == "challenge" and not response.protection_systems


@pytest.mark.parametrize("drm", ["widevine", "playready", "clearkey"])
async def test_init_data_sent_as_a_license_challenge_is_refused_saying_what_it_is(
    proxy_factory, http, dev_token, drm
):
    proxy = await proxy_factory()
    body = (DATA / "pssh" / "shaka_dash_clearkey_mpd_widevine.bin").read_bytes()
    async with http.post(
        f"{proxy.http_url}/v1/licenses/{drm}",
        data=body,
        headers={"Authorization": f"Bearer {dev_token()}"},
    ) as response:
        problem = await response.json(content_type=None)
    assert problem["reason"] == "CHALLENGE_INVALID"
    assert "init data (a pssh box), not a license challenge" in problem["detail"]


def test_the_cli_inspects_init_data(capsys):
    path = DATA / "playready" / "ms_docs_header_spec_PRO_wrmheader_4.0.0.0.bin"
    assert main(["inspect", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "playready_object"
    assert summary["key_ids"] == ["09e091ab-f838-41d2-9e35-58531fd19ec7"]
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "a PlayReady Header Object" in text and "09e091ab-f838-41d2-9e35-58531fd19ec7" in text
