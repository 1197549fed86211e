"""XML from untrusted clients: defusedxml (no DTD, no entities, no external
references) with a tree builder that stops at a fixed depth and element count.

Elements are found by local name: PlayReady clients differ in the prefixes and
default namespaces they write, and a namespace never changes what we read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import XMLParser

from proxy.challenge.common import invalid

#: Deepest nesting accepted (a PlayReady challenge nests 11 levels).
MAX_DEPTH = 32
#: Most elements accepted in one document (a PlayReady challenge has about 40).
MAX_ELEMENTS = 2048

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class _TooComplex(Exception):
    """The document nests deeper, or holds more elements, than the bounds allow."""


class _BoundedTreeBuilder(ET.TreeBuilder):
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
    if head[:2] in _UTF16_BOMS or head[:2] in (b"<\x00", b"\x00<"):
        return True
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"<")


def _decoded(body: bytes, drm: str) -> bytes | str:
    """UTF-16 is decoded here (expat only guesses it from a BOM or a declaration);
    UTF-8, with or without BOM, goes to expat as bytes."""
    try:
        if body[:2] in _UTF16_BOMS:
            return body.decode("utf-16")
        if body[:2] == b"<\x00":
            return body.decode("utf-16-le")
        if body[:2] == b"\x00<":
            return body.decode("utf-16-be")
    except UnicodeDecodeError:
        raise invalid(drm, "the UTF-16 text is not valid") from None
    return body


def parse_xml(body: bytes, drm: str) -> ET.Element:
    """The root element of ``body``; CHALLENGE_INVALID for anything else.

    :raises ProxyError: CHALLENGE_INVALID when the document is not well-formed,
        declares a DTD or entities, refers outside itself, or passes the bounds.
    """
    text = _decoded(body, drm)
    parser = XMLParser(
        target=_BoundedTreeBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(text)
        return parser.close()
    except _TooComplex:
        raise invalid(
            drm, f"the XML nests deeper than {MAX_DEPTH} or holds over {MAX_ELEMENTS} elements"
        ) from None
    except DefusedXmlException:
        raise invalid(drm, "the XML declares a DTD, an entity or an external reference") from None
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
