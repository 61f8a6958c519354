"""mrm_edge.data.leads: the 12 leads found by name, never by position."""

import pytest

from mrm_edge.data.dataset import LEADS
from mrm_edge.data.errors import DataError
from mrm_edge.data.leads import canonical_lead, lead_order


def test_standard_layout_has_no_notes() -> None:
    assert lead_order("r.hea", LEADS) == (list(range(12)), ())


def test_reordered_and_extra_leads_are_noted() -> None:
    names = ["vx", *reversed([n.upper() for n in LEADS])]
    order, notes = lead_order("r.hea", names)
    assert [names[i].upper() for i in order] == [n.upper() for n in LEADS]
    assert any("reordered" in n for n in notes) and any("vx" in n for n in notes)


def test_missing_or_doubled_leads_are_errors() -> None:
    with pytest.raises(DataError, match=r"r\.hea: field 'sig_name' lacks lead"):
        lead_order("r.hea", LEADS[:8])
    with pytest.raises(DataError, match="more than once"):
        lead_order("r.hea", [*LEADS, "avr"])


def test_canonical_spelling() -> None:
    assert canonical_lead(" AVR ") == "aVR" and canonical_lead("ML2") == "ML2"
