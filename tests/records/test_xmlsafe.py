"""The shared XML parser of the record readers (mrm_edge/records/xmlsafe.py); the entity
and malformed-file cases run through each format's tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mrm_edge.data.errors import DataError
from mrm_edge.records import read_recording
from mrm_edge.records.xmlsafe import parse_xml


def test_a_system_dtd_parses_and_is_not_fetched(tmp_path: Path) -> None:
    """MUSE's DOCTYPE names a DTD that exists nowhere here: it is not read."""
    path = tmp_path / "ecg.xml"
    path.write_text('<!DOCTYPE RestingECG SYSTEM "/nonexistent/restecg.dtd"><RestingECG/>')
    assert parse_xml(path).tag == "RestingECG"


def test_an_entity_from_a_system_dtd_stays_undefined(tmp_path: Path) -> None:
    """A DTD that exists and declares an entity: never read, so the entity is unknown."""
    (tmp_path / "restecg.dtd").write_text('<!ENTITY secret "from the DTD">')
    path = tmp_path / "ecg.xml"
    dtd = tmp_path / "restecg.dtd"
    path.write_text(f'<!DOCTYPE RestingECG SYSTEM "{dtd}"><RestingECG>&secret;</RestingECG>')
    with pytest.raises(DataError, match=r"not well-formed XML \(undefined entity &secret;"):
        parse_xml(path)


def test_without_defusedxml_the_extra_is_named(tmp_path: Path, monkeypatch) -> None:
    for name in ("defusedxml", "defusedxml.ElementTree"):
        monkeypatch.setitem(sys.modules, name, None)  # import now fails as if not installed
    path = tmp_path / "ecg.xml"
    path.write_text("<RestingECG/>")
    with pytest.raises(DataError) as info:
        read_recording(path)
    assert str(info.value) == (
        f"{path}: reading XML ECG files needs defusedxml: pip install 'mrm-edge[xml]'"
    )
