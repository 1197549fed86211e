"""XML from untrusted clients: no DTD, no entities, no external references, and a
fixed bound on depth and element count.

Every one of those dangers needs markup that starts with ``<!`` (``<!DOCTYPE``,
``<!ENTITY``; an external reference lives only in them). So the text is refused when
it holds any ``<!`` that does not open a comment or a CDATA section, and the text
that passed is what the stdlib's C parser reads: the body is decoded to ``str``
here, which makes expat read UTF-8 whatever the XML declaration says, so no
declared encoding can show the parser markup the scan did not see (a declaration
naming anything but UTF-8 or UTF-16, or UTF-16 on UTF-8 bytes, is refused all the
same), and a text holding NUL, which expat would take for UTF-16, is refused.

Elements are found by local name: PlayReady clients differ in the prefixes and
default namespaces they write, and a namespace never changes what we read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from proxy.challenge.common import invalid, safe_text

#: Deepest nesting accepted (a PlayReady challenge nests 11 levels).
MAX_DEPTH = 32
#: Most elements accepted in one document (a PlayReady challenge has about 40).
MAX_ELEMENTS = 2048
#: Encodings an XML declaration may name (PlayReady writes UTF-8, or UTF-16 in EME).
ENCODINGS = frozenset({"utf-8", "utf-16"})

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: How UTF-16 text starts: a byte-order mark, or "<" in either byte order.
_UTF16_STARTS = (*_UTF16_BOMS, b"<\x00", b"\x00<")
#: The ``<!`` markup a document may hold: comments and CDATA sections.
_HARMLESS_BANG = ("<!--", "<![CDATA[")
_DECLARED_ENCODING = re.compile(r"""encoding\s*=\s*(?:"([^"]*)"|'([^']*)')""")
#: Text fed to the parser at once: a parse past a bound stops within one chunk of it.
_CHUNK = 16 * 1024


class _TooComplex(Exception):
    """The document nests deeper, or holds more elements, than the bounds allow."""


class _Doctype(Exception):
    """The parser met a document type declaration."""


class _TreeBuilder(ET.TreeBuilder):
    """An ElementTree builder that refuses a document type declaration: the second
    guard, should one ever get past :func:`_refuse_dtd_markup` (expat then stops
    calling us; what it does with the rest of the chunk is bounded by its own
    amplification limits, and it never opens an external reference itself)."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        """Refuse the document."""
        raise _Doctype


class _BoundedTreeBuilder(_TreeBuilder):
    """An ElementTree builder that refuses documents past :data:`MAX_DEPTH` / :data:`MAX_ELEMENTS`."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._count = 0

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        """Open an element, unless that passes a bound."""
        self._depth += 1
        self._count += 1
        if self._depth > MAX_DEPTH or self._count > MAX_ELEMENTS:
            raise _TooComplex
        return super().start(tag, attrs)

    def end(self, tag: str) -> ET.Element:
        """Close an element."""
        self._depth -= 1
        return super().end(tag)


def looks_like_xml(body: bytes) -> bool:
    """A cheap sniff: UTF-16 (with a byte-order mark, or ``<`` as its first
    character), or ``<`` after optional UTF-8 BOM and whitespace."""
    head = body[:64]
    if head[:2] in _UTF16_STARTS:
        return True
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"<")


def _decoded(body: bytes, drm: str) -> str:
    """The text of ``body``: UTF-16 (by its BOM, or by ``<`` as its first character),
    else UTF-8 (a BOM is left for expat, which skips it)."""
    try:
        if body[:2] in _UTF16_BOMS:
            return body.decode("utf-16")
        if body[:2] == b"<\x00":
            return body.decode("utf-16-le")
        if body[:2] == b"\x00<":
            return body.decode("utf-16-be")
    except UnicodeDecodeError:
        raise invalid(drm, "the UTF-16 text is not valid") from None
    # Bytes that are not UTF-8 become lone surrogates, which the parser refuses
    # (it encodes the text back to UTF-8): the scan still runs first, so a
    # Latin-1 document is told about its declared encoding, not its bytes.
    return body.decode("utf-8", "surrogateescape")


def _refuse_dtd_markup(text: str, drm: str) -> None:
    """Refuse any ``<!`` but a comment's or a CDATA section's, wherever it stands
    (inside a comment too: a false alarm there costs nothing, and the scan needs no
    state an attacker could confuse), and any NUL character.

    NUL is never XML, and it is the one way left to change what expat reads: expat
    takes text that starts ``<`` NUL or NUL ``<`` for UTF-16 even when told UTF-8, so
    ``"<\\0!\\0D\\0..."`` (UTF-32, or UTF-16 spelt with NULs between the characters)
    would show it a ``<!DOCTYPE`` that this scan never saw.
    """
    if "\0" in text:
        raise invalid(drm, "the XML is not well-formed: it holds a NUL character")
    at = text.find("<!")
    while at >= 0:
        if not text.startswith(_HARMLESS_BANG, at):
            raise invalid(drm, "the XML declares a DTD, an entity or an external reference")
        at = text.find("<!", at + 2)


def _refuse_other_encoding(text: str, utf16: bool, drm: str) -> None:
    """Refuse an XML declaration naming an encoding other than UTF-8 or UTF-16, or
    UTF-16 on UTF-8 bytes. The parser reads the text as decoded here whatever the
    declaration says; this keeps a document from meaning something else elsewhere."""
    end = text.find("?>") if text.startswith(("<?xml", "\ufeff<?xml")) else -1
    match = _DECLARED_ENCODING.search(text, 0, end) if end > 0 else None
    if match is None:
        return
    declared = match.group(1) if match.group(1) is not None else match.group(2)
    shown = safe_text(declared, 32)
    if declared.lower() not in ENCODINGS:
        raise invalid(drm, f"the XML declares encoding {shown!r}; only UTF-8 and UTF-16 are read")
    if not utf16 and declared.lower() != "utf-8":
        raise invalid(drm, f"the XML declares encoding {shown!r} but is UTF-8")


def _check_depth(root: ET.Element) -> None:
    """Raise :class:`_TooComplex` when the tree nests deeper than :data:`MAX_DEPTH`."""
    level = [root]
    for _ in range(MAX_DEPTH):
        level = [item for element in level for item in element]
        if not level:
            return
    raise _TooComplex


def _parse(text: str) -> ET.Element:
    """The root element of ``text``, within the bounds.

    Every element starts with a ``<`` that does not start an end tag, so a text with
    no more of those than :data:`MAX_ELEMENTS` cannot pass the element bound: the C
    tree builder's own methods read it, and the depth is checked on the tree. Any
    other text goes to a builder that counts as it reads, fed in chunks so that
    reading stops soon after the first element past a bound.
    """
    starts = text.count("<")
    dense = starts > MAX_ELEMENTS and starts - text.count("</") > MAX_ELEMENTS
    # The text passed _refuse_dtd_markup and expat reads a str as UTF-8: no DTD is in
    # what it reads (and either builder refuses a DOCTYPE all the same).
    parser = ET.XMLParser(target=_BoundedTreeBuilder() if dense else _TreeBuilder())  # noqa: S314
    for at in range(0, len(text), _CHUNK):
        parser.feed(text[at : at + _CHUNK])
    root: ET.Element = parser.close()
    _check_depth(root)
    return root


def parse_xml(body: bytes, drm: str) -> ET.Element:
    """The root element of ``body``; CHALLENGE_INVALID for anything else.

    :raises ProxyError: CHALLENGE_INVALID when the document is not well-formed,
        declares a DTD or entities, refers outside itself, names an encoding other
        than UTF-8 or UTF-16, or passes the bounds.
    """
    text = _decoded(body, drm)
    _refuse_dtd_markup(text, drm)
    _refuse_other_encoding(text, body[:2] in _UTF16_STARTS, drm)
    try:
        return _parse(text)
    except _Doctype:
        raise invalid(drm, "the XML declares a DTD, an entity or an external reference") from None
    except _TooComplex:
        raise invalid(
            drm, f"the XML nests deeper than {MAX_DEPTH} or holds over {MAX_ELEMENTS} elements"
        ) from None
    except (ET.ParseError, ValueError, LookupError, RecursionError):
        raise invalid(drm, "the XML is not well-formed") from None


def local_name(element: ET.Element) -> str:
    """An element's name without its namespace."""
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def child(element: ET.Element | None, name: str) -> ET.Element | None:
    """The first child element named ``name`` (any namespace), or None."""
    if element is None:
        return None
    for item in element:
        if local_name(item) == name:
            return item
    return None


def children(element: ET.Element | None, name: str) -> Iterator[ET.Element]:
    """Every child element named ``name`` (any namespace)."""
    if element is None:
        return
    for item in element:
        if local_name(item) == name:
            yield item


def text_of(element: ET.Element | None) -> str | None:
    """An element's text, stripped; None when the element is missing or empty."""
    if element is None or element.text is None:
        return None
    return element.text.strip() or None
