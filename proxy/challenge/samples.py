"""Well-formed challenges built from their published structures, for tests,
benchmarks, fuzz seeds and plugin authors' own tests.

The Widevine builders write protobuf wire format by hand from the field numbers
(they do not use our generated classes), so a test that parses their output
checks our ``.proto`` against the protocol, not against itself. Nothing here is
a real device's challenge: signatures, certificates and encrypted parts are
stand-in bytes of a realistic size.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from collections.abc import Iterable, Mapping

from proxy.challenge.pssh import PLAYREADY_SYSTEM_ID, WIDEVINE_SYSTEM_ID
from proxy.encoding import b64url_encode

# -- protobuf wire format -----------------------------------------------------------


def varint(value: int) -> bytes:
    """A base-128 varint (negative numbers as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_varint(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(number << 3) + varint(value)


def pb_bytes(number: int, data: bytes | str) -> bytes:
    """A length-delimited field (wire type 2)."""
    raw = data.encode() if isinstance(data, str) else data
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def four_cc(code: str) -> int:
    """A four-character code ('cenc', 'cbcs') as the uint32 Widevine stores."""
    return int.from_bytes(code.encode("ascii"), "big")


# -- CENC -------------------------------------------------------------------------------


def pssh_box(system_id: bytes, data: bytes = b"", key_ids: Iterable[bytes] | None = None) -> bytes:
    """A ``pssh`` box: version 1 when ``key_ids`` is given, else version 0."""
    body = bytearray()
    if key_ids is None:
        body += b"\x00\x00\x00\x00" + system_id
    else:
        kids = list(key_ids)
        body += b"\x01\x00\x00\x00" + system_id + struct.pack(">I", len(kids)) + b"".join(kids)
    body += struct.pack(">I", len(data)) + data
    return struct.pack(">I", len(body) + 8) + b"pssh" + bytes(body)


# -- Widevine -----------------------------------------------------------------------------


def widevine_pssh_data(
    key_ids: Iterable[bytes] = (),
    *,
    content_id: bytes | None = None,
    provider: str | None = None,
    protection_scheme: str | None = None,
) -> bytes:
    """A WidevinePsshData (the Widevine pssh box payload)."""
    out = b"".join(pb_bytes(2, k) for k in key_ids)
    if provider is not None:
        out += pb_bytes(3, provider)
    if content_id is not None:
        out += pb_bytes(4, content_id)
    if protection_scheme is not None:
        out += pb_varint(9, four_cc(protection_scheme))
    return out


DEFAULT_CLIENT_INFO = {
    "company_name": "Example",
    "model_name": "Reference",
    "architecture_name": "x86-64",
    "platform_name": "Linux",
    "widevine_cdm_version": "4.10.2830.0",
}


def widevine_client_id(
    client_info: Mapping[str, str] | None = None,
    *,
    token_size: int = 1200,
    max_hdcp_version: int | None = 4,
    oem_crypto_api_version: int | None = 16,
) -> bytes:
    """A ClientIdentification: a stand-in device certificate, facts and capabilities."""
    token = (bytes(range(256)) * (token_size // 256 + 1))[:token_size]
    out = pb_varint(1, 1) + pb_bytes(2, token)
    for name, value in (DEFAULT_CLIENT_INFO if client_info is None else client_info).items():
        out += pb_bytes(3, pb_bytes(1, name) + pb_bytes(2, value))
    caps = b""
    if max_hdcp_version is not None:
        caps += pb_varint(4, max_hdcp_version)
    if oem_crypto_api_version is not None:
        caps += pb_varint(5, oem_crypto_api_version)
    if caps:
        out += pb_bytes(6, caps)
    return out


def widevine_content_identification(
    form: str = "pssh_data",
    *,
    key_ids: Iterable[bytes] = (),
    content_id: bytes | None = None,
    protection_scheme: str | None = "cenc",
    init_data: bytes | None = None,
    license_type: int = 1,
    session_id: bytes = b"session-1",
    request_id: bytes | None = None,
) -> bytes:
    """A ContentIdentification in one of its four forms:
    ``pssh_data``, ``webm``, ``existing_license`` or ``init_data`` (CENC; ``init_data``
    defaults to a Widevine pssh box built from the other arguments).

    ``request_id`` is the CDM's name for its license request (a new request carries it;
    the license server writes it into the license id, which renewals and releases echo
    in the ``existing_license`` form); by default ``01``*16 in the pssh data form,
    ``req-1`` in the existing license form, none in the others.
    """
    kids = list(key_ids)
    pssh = widevine_pssh_data(kids, content_id=content_id, protection_scheme=protection_scheme)
    if form == "pssh_data":
        rid = request_id if request_id is not None else b"\x01" * 16
        return pb_bytes(1, pb_bytes(1, pssh) + pb_varint(2, license_type) + pb_bytes(3, rid))
    if form == "webm":
        extra = pb_bytes(3, request_id) if request_id is not None else b""
        return pb_bytes(2, pb_bytes(1, kids[0]) + pb_varint(2, license_type) + extra)
    if form == "existing_license":
        rid = request_id if request_id is not None else b"req-1"
        license_id = pb_bytes(1, rid) + pb_bytes(2, session_id) + pb_varint(4, license_type)
        license_id += pb_varint(5, 1)
        return pb_bytes(3, pb_bytes(1, license_id) + pb_varint(2, 30) + pb_varint(3, 10))
    if form == "init_data":
        data = init_data if init_data is not None else pssh_box(WIDEVINE_SYSTEM_ID, pssh)
        extra = pb_bytes(4, request_id) if request_id is not None else b""
        return pb_bytes(4, pb_varint(1, 1) + pb_bytes(2, data) + pb_varint(3, license_type) + extra)
    raise ValueError(f"unknown content identification form {form!r}")


def widevine_license_request(
    *,
    key_ids: Iterable[bytes] = (),
    content_id: bytes | None = None,
    form: str = "pssh_data",
    request_type: int | None = 1,
    privacy: bool = False,
    client_info: Mapping[str, str] | None = None,
    content: bytes | None = None,
    **content_options: object,
) -> bytes:
    """A SignedMessage holding a LicenseRequest, as a Widevine CDM sends it.

    :param request_type: 1 new, 2 renewal, 3 release; None leaves the field out.
    :param privacy: send an EncryptedClientIdentification instead of the client id.
    :param content: a ready ContentIdentification message (overrides ``form``).
    """
    request = b""
    if privacy:
        encrypted = pb_bytes(1, "license.example.com") + pb_bytes(2, b"\x42" * 16)
        encrypted += pb_bytes(3, b"\x5a" * 1232) + pb_bytes(4, b"\x07" * 16)
        encrypted += pb_bytes(5, b"\x33" * 256)
        request += pb_bytes(8, encrypted)
    else:
        request += pb_bytes(1, widevine_client_id(client_info))
    if content is None:
        content = widevine_content_identification(
            form,
            key_ids=key_ids,
            content_id=content_id,
            **content_options,  # type: ignore[arg-type]
        )
    request += pb_bytes(2, content)
    if request_type is not None:
        request += pb_varint(3, request_type)
    request += pb_varint(4, 1_700_000_000) + pb_varint(6, 21) + pb_varint(7, 123456789)
    return pb_varint(1, 1) + pb_bytes(2, request) + pb_bytes(3, b"\x99" * 256)


# -- PlayReady ----------------------------------------------------------------------------

PLAYREADY_HEADER_NS = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader"


def playready_key_id(key_id: bytes) -> str:
    """A canonical key id in PlayReady's form: base64 of the little-endian GUID."""
    return base64.b64encode(uuid.UUID(bytes=key_id).bytes_le).decode("ascii")


def wrm_header(version: str, key_ids: Iterable[bytes], algid: str = "AESCTR") -> str:
    """A WRMHEADER of ``version`` (``4.0.0.0`` ... ``4.3.0.0``) naming ``key_ids``."""
    kids = [playready_key_id(k) for k in key_ids]
    if version == "4.0.0.0":
        data = (
            f"<PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>{algid}</ALGID></PROTECTINFO>"
            f"<KID>{kids[0]}</KID>"
        )
    elif version == "4.1.0.0":
        data = f'<PROTECTINFO><KID ALGID="{algid}" VALUE="{kids[0]}"></KID></PROTECTINFO>'
    else:
        items = "".join(f'<KID ALGID="{algid}" VALUE="{k}"></KID>' for k in kids)
        data = f"<PROTECTINFO><KIDS>{items}</KIDS></PROTECTINFO>"
    data += "<LA_URL>https://license.example.com/playready</LA_URL>"
    return f'<WRMHEADER xmlns="{PLAYREADY_HEADER_NS}" version="{version}"><DATA>{data}</DATA></WRMHEADER>'


def playready_header_object(header: str) -> bytes:
    """A PlayReady Header Object holding ``header`` (a WRMHEADER) as its one record:
    ``length(u32le) count(u16le)``, then ``type(u16le) = 1, length(u16le)``, UTF-16LE."""
    record = header.encode("utf-16-le")
    body = struct.pack("<HHH", 1, 1, len(record)) + record
    return struct.pack("<I", len(body) + 4) + body


def playready_challenge(
    header: str, *, custom_data: str | None = None, client_version: str = "4.2.0.5545"
) -> bytes:
    """A SOAP AcquireLicense request around ``header`` (a WRMHEADER's XML)."""
    custom = f"<CustomData>{custom_data}</CustomData>" if custom_data is not None else ""
    cipher = base64.b64encode(bytes(range(256)) * 4).decode()
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<AcquireLicense xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols"><challenge>'
        '<Challenge xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols/messages">'
        '<LA xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols" Id="SignedData" '
        'xml:space="preserve"><Version>4</Version>'
        f"<ContentHeader>{header}</ContentHeader>"
        f"<CLIENTINFO><CLIENTVERSION>{client_version}</CLIENTVERSION></CLIENTINFO>"
        f"{custom}<LicenseNonce>7GYVLC7wvGVR0nqGYXs4DQ==</LicenseNonce>"
        "<ClientTime>1700000000</ClientTime>"
        '<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" '
        'Type="http://www.w3.org/2001/04/xmlenc#Element"><CipherData>'
        f"<CipherValue>{cipher}</CipherValue></CipherData></EncryptedData></LA>"
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignatureValue>'
        f"{base64.b64encode(bytes(64)).decode()}</SignatureValue></Signature>"
        "</Challenge></challenge></AcquireLicense></soap:Body></soap:Envelope>"
    ).encode()


def playready_key_message(soap: bytes, *, bom: bool = True) -> bytes:
    """The UTF-16LE ``PlayReadyKeyMessage`` wrapper browser EME hands out around ``soap``."""
    challenge = base64.b64encode(soap).decode("ascii")
    text = (
        '<PlayReadyKeyMessage type="LicenseAcquisition"><LicenseAcquisition Version="1">'
        f'<Challenge encoding="base64encoded">{challenge}</Challenge><HttpHeaders>'
        "<HttpHeader><name>Content-Type</name><value>text/xml; charset=utf-8</value></HttpHeader>"
        "<HttpHeader><name>SOAPAction</name>"
        '<value>"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"</value>'
        "</HttpHeader></HttpHeaders></LicenseAcquisition></PlayReadyKeyMessage>"
    )
    return (b"\xff\xfe" if bom else b"") + text.encode("utf-16-le")


# -- FairPlay -----------------------------------------------------------------------------


def fairplay_spc(version: int = 1, payload_size: int = 2048) -> bytes:
    """An SPC-shaped message: version, reserved, IV, wrapped key, certificate hash,
    payload length and payload (stand-in bytes: a real SPC is encrypted)."""
    payload = bytes(i % 251 for i in range(payload_size))
    return (
        struct.pack(">II", version, 0)
        + b"\x11" * 16
        + b"\x22" * 128
        + bytes(range(20))
        + struct.pack(">I", payload_size)
        + payload
    )


def fairplay_form(spc: bytes, asset_id: str | None = None, *, escape: bool = True) -> bytes:
    """``spc=<base64>[&assetId=<id>]``; ``escape=False`` leaves ``+ / =`` bare, as many players do."""
    from urllib.parse import quote

    b64 = base64.b64encode(spc).decode("ascii")
    out = "spc=" + (quote(b64, safe="") if escape else b64)
    if asset_id is not None:
        out += "&assetId=" + quote(asset_id, safe="")
    return out.encode("ascii")


def fairplay_json(spc: bytes, **extra: str) -> bytes:
    """``{"spc": "<base64>", ...}`` as Verimatrix takes it."""
    return json.dumps({"spc": base64.b64encode(spc).decode("ascii"), **extra}).encode()


# -- ClearKey -----------------------------------------------------------------------------


def clearkey_request(
    *key_ids: bytes, session_type: str | None = "temporary", standard_base64: bool = False
) -> bytes:
    """A W3C ClearKey license request (a release message when ``session_type`` is None).

    :param standard_base64: write the key ids as Android's ClearKey CDM did before 8.1:
        standard base64 with the padding removed.
    """
    if standard_base64:
        kids = [base64.b64encode(k).rstrip(b"=").decode("ascii") for k in key_ids]
    else:
        kids = [b64url_encode(k) for k in key_ids]
    doc: dict[str, object] = {"kids": kids}
    if session_type is not None:
        doc["type"] = session_type
    return json.dumps(doc).encode()


# -- seeds ---------------------------------------------------------------------------------


def seed_challenges() -> dict[str, list[bytes]]:
    """Well-formed inputs per parser, for property tests and fuzzing to mutate."""
    kid = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
    kid2 = uuid.UUID("a2c786d0-f9ef-4cb3-b333-cd323a4284a5").bytes
    spc = fairplay_spc(payload_size=300)
    header = wrm_header("4.3.0.0", [kid, kid2])
    soap = playready_challenge(header, custom_data="User=x")
    widevine_box = pssh_box(WIDEVINE_SYSTEM_ID, widevine_pssh_data([kid], content_id=b"c"))
    return {
        "widevine": [
            b"\x08\x04",
            widevine_license_request(key_ids=[kid, kid2], content_id=b"movie-1"),
            widevine_license_request(key_ids=[kid], privacy=True),
            widevine_license_request(form="webm", key_ids=[kid]),
            widevine_license_request(form="existing_license", request_type=2),
            widevine_license_request(form="init_data", key_ids=[kid], content_id=b"c"),
        ],
        "playready": [
            soap,
            playready_challenge(wrm_header("4.0.0.0", [kid])),
            playready_challenge(wrm_header("4.1.0.0", [kid])),
            playready_key_message(playready_challenge(wrm_header("4.2.0.0", [kid]))),
        ],
        "fairplay": [
            spc,
            fairplay_form(spc, asset_id="asset-1"),
            fairplay_form(spc, escape=False),
            fairplay_json(spc, assetId="a"),
        ],
        "clearkey": [
            clearkey_request(kid, kid2),
            clearkey_request(kid, session_type=None),
            clearkey_request(kid, session_type="persistent-license"),
        ],
        "pssh": [
            widevine_box,
            pssh_box(WIDEVINE_SYSTEM_ID, widevine_pssh_data([kid2]), key_ids=[kid]) + widevine_box,
        ],
        "initdata": [
            widevine_box + pssh_box(PLAYREADY_SYSTEM_ID, playready_header_object(header)),
            playready_header_object(wrm_header("4.0.0.0", [kid])),
            header.encode(),
            header.encode("utf-16"),
            clearkey_request(kid, kid2, session_type=None),
        ],
    }
