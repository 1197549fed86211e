"""The XML guards in front of the stdlib's C parser (proxy/challenge/xmlsafe.py).

Each attack is first shown to work on the bare stdlib parser, then refused by
``parse_xml`` through every way in (UTF-8 with or without BOM, UTF-16 with or without
BOM, the PlayReadyKeyMessage's inner SOAP body, a PlayReady Object's WRMHEADER), and
by each guard on its own: the ``<!`` scan, the NUL check, the declared encoding check,
the builder's DOCTYPE refusal, the depth walk and the element count; each guard has a
test that fails without it. Trees of everything accepted are compared with what
defusedxml (the parser this replaced) builds.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
import xml.etree.ElementTree as ET

import pytest
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

from proxy.challenge import samples, xmlsafe
from proxy.challenge.initdata import parse_init_data
from proxy.challenge.playready import parse_playready
from proxy.challenge.xmlsafe import MAX_DEPTH, MAX_ELEMENTS, parse_xml
from proxy.errors import ProxyError, Reason
from tests.conftest import DATA

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
DTD = "declares a DTD"
ENCODING = "only UTF-8 and UTF-16 are read"

#: Markup an unguarded expat reads: entity expansion, attribute defaults, external
#: subsets, parameter entities, and a DOCTYPE placed after a comment or a PI.
ATTACKS = {
    "entity expansion": '<!DOCTYPE a [<!ENTITY e "EXPANDED">]><a>&e;</a>',
    "nested expansion": (
        '<!DOCTYPE a [<!ENTITY x "EXPANDED"><!ENTITY y "&x;&x;&x;&x;">]><a>&y;</a>'
    ),
    "attribute default": '<!DOCTYPE a [<!ATTLIST a injected CDATA "EXPANDED">]><a/>',
    "element declaration": "<!DOCTYPE a [<!ELEMENT a ANY>]><a>EXPANDED</a>",
    "bare doctype": "<!DOCTYPE a><a>EXPANDED</a>",
    "external subset": '<!DOCTYPE a SYSTEM "http://127.0.0.1:9/a.dtd"><a>EXPANDED</a>',
    "public id": '<!DOCTYPE a PUBLIC "-//A//EN" "file:///etc/passwd"><a>EXPANDED</a>',
    "parameter entity": '<!DOCTYPE a [<!ENTITY % p "x"> %p;]><a>EXPANDED</a>',
    "after a comment": '<!-- hi --><!DOCTYPE a [<!ENTITY e "EXPANDED">]><a>&e;</a>',
    # A scan that skipped comments would take this PI's data for one and miss the DTD.
    "after a PI that opens a comment": (
        '<?pi <!-- ?><!DOCTYPE a [<!ENTITY e "EXPANDED">]><a>&e;</a><!-- -->'
    ),
    "after the declaration": (
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE a [<!ENTITY e "EXPANDED">]><a>&e;</a>'
    ),
    "notation": '<!DOCTYPE a [<!NOTATION n SYSTEM "x">]><a>EXPANDED</a>',
}

#: The ways the same text can be encoded and still be read.
ENCODINGS = {
    "utf-8": lambda text: text.encode(),
    "utf-8 bom": lambda text: b"\xef\xbb\xbf" + text.encode(),
    "utf-16 bom": lambda text: text.encode("utf-16"),
    "utf-16le": lambda text: text.encode("utf-16-le"),
    "utf-16be": lambda text: text.encode("utf-16-be"),
    "utf-16be bom": lambda text: b"\xfe\xff" + text.encode("utf-16-be"),
}


def refused(body: bytes) -> str:
    with pytest.raises(ProxyError) as raised:
        parse_xml(body, "PlayReady")
    assert raised.value.reason is Reason.CHALLENGE_INVALID
    return raised.value.detail


def unguarded(text: str) -> bytes:
    """What the stdlib parser alone makes of ``text``: the attack works there."""
    return ET.tostring(ET.fromstring(text))  # noqa: S314 - the unguarded parser on purpose


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_unguarded_parser_reads_every_attack(attack):
    assert b"EXPANDED" in unguarded(ATTACKS[attack])


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_dtd_is_refused_whatever_the_encoding(attack, encoding):
    assert DTD in refused(ENCODINGS[encoding](ATTACKS[attack]))


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_scan_alone_refuses_every_attack(attack):
    # The parser's builder refuses a DOCTYPE too: this keeps the scan's own guard tested.
    with pytest.raises(ProxyError) as raised:
        xmlsafe._refuse_dtd_markup(ATTACKS[attack], "PlayReady")
    assert DTD in raised.value.detail


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_dtd_in_the_key_message_s_soap_body_is_refused(attack):
    wrapped = samples.playready_key_message(ATTACKS[attack].encode())
    with pytest.raises(ProxyError) as raised:
        parse_playready(wrapped)
    assert DTD in raised.value.detail


def test_a_dtd_in_a_playready_object_s_wrmheader_is_refused():
    header = '<!DOCTYPE WRMHEADER [<!ENTITY e "x">]><WRMHEADER version="4.0.0.0">&e;</WRMHEADER>'
    record = header.encode("utf-16-le")
    pro = struct.pack("<IH", 10 + len(record), 1) + struct.pack("<HH", 1, len(record)) + record
    with pytest.raises(ProxyError) as raised:
        parse_init_data(pro)
    assert DTD in raised.value.detail


@pytest.mark.parametrize(
    "markup",
    [
        "<![INCLUDE[ x ]]>",  # a conditional section: DTD syntax
        "<!- not a comment -->",
        "<![CDATA x]]>",
        "<!>",
    ],
)
def test_any_other_bang_markup_is_refused(markup):
    assert DTD in refused(f"<a>{markup}</a>".encode())


def test_comments_and_cdata_are_still_read():
    root = parse_xml(b"<!-- lead --><a><!-- c --><![CDATA[x<y & z]]></a><!-- tail -->", "P")
    assert root.text == "x<y & z"


def test_a_comment_holding_dtd_markup_is_refused_too():
    # The scan keeps no state (see the PI test above): a false alarm here is the price.
    assert DTD in refused(b"<a><!-- <!DOCTYPE a> --></a>")


def test_a_challenge_with_cdata_custom_data_and_a_comment_is_read():
    soap = samples.playready_challenge(
        samples.wrm_header("4.2.0.0", [KID]), custom_data='<![CDATA[{"token":"a<b"}]]>'
    )
    soap = soap.replace(b"<soap:Body>", b"<!-- from a player --><soap:Body>")
    info = parse_playready(soap)
    assert info.details["playready_custom_data"] == '{"token":"a<b"}'
    assert info.key_ids == (KID,)


# -- encodings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["UTF-7", "cp037", "ISO-8859-1", "us-ascii", "UTF-32", "utf-16le", "x"]
)
def test_a_declared_encoding_other_than_utf8_or_utf16_is_refused(name):
    body = f'<?xml version="1.0" encoding="{name}"?><a/>'.encode()
    assert ENCODING in refused(body)
    assert ENCODING in refused(f"<?xml version='1.0' encoding='{name}'?><a/>".encode("utf-16"))
    assert ENCODING in refused(b"\xef\xbb\xbf" + body)


def _hidden_utf7(text: str) -> bytes:
    # UTF-7 may write any character as base64 between "+" and "-": "<" is "+ADw-".
    return text.replace("<", "+ADw-").encode("ascii")


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("UTF-7", _hidden_utf7),
        # EBCDIC: expat reads a declared single-byte codec through Python's codecs.
        ("cp037", lambda text: text.encode("cp037")),
        ("UTF-16", lambda text: text.encode("utf-16-le")),
        ("UTF-32", lambda text: text.encode("utf-32-le")),
    ],
)
def test_markup_hidden_by_a_declared_encoding_never_reaches_the_parser(name, encode):
    hidden = encode('<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')
    assert hidden.decode("utf-7" if name == "UTF-7" else name).startswith("<!DOCTYPE")
    body = f'<?xml version="1.0" encoding="{name}"?>'.encode() + hidden
    assert b"<!" not in body
    detail = refused(body)
    assert ENCODING in detail or "NUL" in detail


def _spelt_with_nuls(text: str, before: bool) -> str:
    return "".join("\0" + c if before else c + "\0" for c in text)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("before", [False, True], ids=["<,NUL", "NUL,<"])
def test_markup_spelt_with_nuls_is_refused(before, encoding):
    # Expat takes text that starts "<" NUL or NUL "<" for UTF-16, even when told UTF-8:
    # with a NUL after (or before) each character it would read the DTD the scan missed.
    body = ENCODINGS[encoding](_spelt_with_nuls(ATTACKS["entity expansion"], before))
    # Bare, those bytes are UTF-16 of the attack itself, and are read (and refused) as such.
    expected = DTD if encoding == "utf-8" else "it holds a NUL character"
    assert expected in refused(body)


@pytest.mark.parametrize("codec", ["utf-32", "utf-32-le", "utf-32-be"])
def test_utf32_is_not_read(codec):
    assert "NUL" in refused(ATTACKS["entity expansion"].encode(codec))
    assert "NUL" in refused(b"<a>x</a>".decode().encode(codec))


@pytest.mark.parametrize("declared", ["utf-8", "UTF-8", "utf-16", "UTF-16"])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_utf8_and_utf16_declarations_are_read(declared, encoding):
    body = ENCODINGS[encoding](f'<?xml version="1.0" encoding="{declared}"?><a>\u00e9</a>')
    if encoding.startswith("utf-8") and declared.lower() == "utf-16":
        assert "but is UTF-8" in refused(body)  # as expat refused it
    else:  # UTF-16 text declaring UTF-8 was always read: the text is decoded before expat
        assert parse_xml(body, "PlayReady").text == "\u00e9"


def test_the_parser_refuses_a_doctype_that_got_past_the_scan():
    with pytest.raises(xmlsafe._Doctype):
        xmlsafe._parse(ATTACKS["entity expansion"])
    with pytest.raises(xmlsafe._Doctype):
        xmlsafe._parse(ATTACKS["entity expansion"] + "<!--" + "<" * (MAX_ELEMENTS + 1) + "-->")


def test_bytes_that_are_not_utf8_are_refused():
    assert "not well-formed" in refused(b"<a>\xff</a>")
    assert "not well-formed" in refused(b"<a>\xed\xa0\x80</a>")  # an encoded surrogate


# -- bounds ----------------------------------------------------------------------------

#: Comments full of "<" put a document over the quick count without adding elements,
#: so it goes to the counting builder instead of the C one.
PADDING = "<!--" + "<" * (MAX_ELEMENTS + 1) + "-->"


@pytest.mark.parametrize("padding", ["", PADDING], ids=["quick count", "counting builder"])
def test_the_depth_bound_is_exact(padding):
    def nested(depth: int) -> bytes:
        return f"<a>{padding}{'<a>' * (depth - 1)}{'</a>' * depth}".encode()

    parse_xml(nested(MAX_DEPTH), "PlayReady")
    assert "nests deeper" in refused(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("padding", ["", PADDING], ids=["quick count", "counting builder"])
@pytest.mark.parametrize("element", ["<x/>", "<x></x>"])
def test_the_element_bound_is_exact(padding, element):
    def flat(count: int) -> bytes:
        return f"<r>{padding}{element * (count - 1)}</r>".encode()

    assert len(list(parse_xml(flat(MAX_ELEMENTS), "PlayReady").iter())) == MAX_ELEMENTS
    assert "elements" in refused(flat(MAX_ELEMENTS + 1))


def test_end_tags_in_comments_do_not_hide_elements_from_the_count():
    body = "<r><!--" + "</" * 5000 + "-->" + "<x/>" * MAX_ELEMENTS + "</r>"
    assert "elements" in refused(body.encode())


def test_a_huge_flat_document_stops_at_the_bound():
    assert "elements" in refused(b"<r>" + b"<x/>" * 200_000 + b"</r>")


# -- the same trees as before ----------------------------------------------------------


def _corpus() -> list[bytes]:
    bodies = [path.read_bytes() for path in sorted((DATA / "playready").glob("*.xml"))]
    for path in sorted((DATA / "fuzz").glob("*.json")):
        bodies += [base64.b64decode(text) for text in json.loads(path.read_text())["inputs"]]
    soap = (DATA / "playready" / "ms_docs_license_server_AcquireLicense_request.xml").read_bytes()
    return [
        *bodies,
        samples.playready_key_message(soap),
        samples.playready_key_message(soap, bom=False),
    ]


def _defused(body: bytes) -> bytes:
    """The tree defusedxml builds, with UTF-16 decoded first as parse_xml always did."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return ET.tostring(defused_fromstring(body.decode("utf-16")))
    if body[:2] in (b"<\x00", b"\x00<"):
        codec = "utf-16-le" if body[:1] == b"<" else "utf-16-be"
        return ET.tostring(defused_fromstring(body.decode(codec)))
    return ET.tostring(defused_fromstring(body))


def test_every_document_defusedxml_reads_gives_the_same_tree():
    compared = 0
    for body in _corpus():
        try:
            expected = _defused(body)
        except (ET.ParseError, DefusedXmlException, ValueError, LookupError):
            continue
        assert ET.tostring(parse_xml(body, "PlayReady")) == expected
        compared += 1
    assert compared >= 15
