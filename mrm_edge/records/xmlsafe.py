"""XML for the record readers, parsed by the standard library behind ``defusedxml``: entity
declarations (billion laughs, external entities) are refused, a DTD named by a SYSTEM id
(GE MUSE's ``restecg.dtd``) is allowed and never fetched; every failure one line."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from mrm_edge.data.errors import DataError

#: The XML Schema instance namespace's ``type`` attribute (HL7's ``xsi:type``).
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def parse_xml(path: Path) -> Element:
    """The root element of the XML file at ``path``; a :class:`DataError` naming the file
    for XML that is not well-formed (with its line and column) or that declares entities."""
    try:  # lazily: the core install reads WFDB without it
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import parse
    except ModuleNotFoundError:
        raise DataError(
            f"{path}: reading XML ECG files needs defusedxml: pip install 'mrm-edge[xml]'"
        ) from None
    try:
        return parse(str(path)).getroot()
    except DefusedXmlException as e:  # entities are never expanded nor fetched
        raise DataError(
            f"{path}: XML declares or references an entity ({e!r}); refused, entity "
            "expansion and external entities are not read"
        ) from None
    except ParseError as e:
        raise DataError(f"{path}: not well-formed XML ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def text_of(elem: Element, path: str, namespaces: dict[str, str] | None = None) -> str | None:
    """The stripped text of the first element at ``path`` under ``elem``; None when absent
    or empty."""
    found = elem.find(path, namespaces)
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def required_text(where: object, elem: Element, path: str, expected: str) -> str:
    """:func:`text_of`, or a :class:`DataError` naming the field and ``expected``."""
    text = text_of(elem, path)
    if text is None:
        raise DataError(f"{where}: field {path!r} is missing or empty, expected {expected}")
    return text


def number(where: object, what: str, text: str | None, kind: type = float) -> float:
    """``text`` as a ``kind`` (float or int); a :class:`DataError` naming ``what`` for
    anything else (missing, empty, not a number)."""
    try:
        return kind(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        noun = "an integer" if kind is int else "a number"
        raise DataError(f"{where}: {what} is {text!r}, expected {noun}") from None
