"""The label code table against the published files it cites: each SNOMED CT code is the one
the PhysioNet/CinC Challenge 2021's table gives for the cited row. The rows below were read
from github.com/physionetchallenges/evaluation-2021 at commit e2a75fc
(dx_mapping_scored.csv SHA-256 fad13ad9…41d0; dx_mapping_unscored.csv as of e3a9eb4), as
"Dx,SNOMEDCTCode,Abbreviation,CPSC,...": a wrong code typed into the table fails here."""

from __future__ import annotations

import pytest
from mrm_edge.runtime.outbox.codes import (
    CPSC2018,
    ECG_STUDY,
    LOCAL,
    PTBXL,
    SCORED,
    SNOMED,
    UNSCORED,
    CodeTable,
)

from mrm_edge.card import ModelCard
from mrm_edge.data.cpsc2018 import CPSC_LABELS

# (file, Abbreviation) -> (Dx, SNOMEDCTCode, CPSC count): rows copied from the two files.
PUBLISHED = {
    (SCORED, "AF"): ("atrial fibrillation", "164889003", 1221),
    (SCORED, "IAVB"): ("1st degree av block", "270492004", 722),
    (SCORED, "LBBB"): ("left bundle branch block", "164909002", 236),
    (SCORED, "RBBB"): ("right bundle branch block", "59118001", 1857),
    (SCORED, "NSR"): ("sinus rhythm", "426783006", 918),
    (SCORED, "PAC"): ("premature atrial contraction", "284470004", 616),
    (UNSCORED, "STD"): ("st depression", "429622005", 869),
    (UNSCORED, "STE"): ("st elevation", "164931005", 220),
    (UNSCORED, "VEB"): ("ventricular ectopics", "164884008", 700),
    (SCORED, "CLBBB"): ("complete left bundle branch block", "733534002", 0),
    (SCORED, "CRBBB"): ("complete right bundle branch block", "713427006", 0),
    (SCORED, "NSIVCB"): ("nonspecific intraventricular conduction disorder", "698252002", 0),
    (UNSCORED, "MI"): ("myocardial infarction", "164865005", 0),
    (UNSCORED, "LAE"): ("left atrial enlargement", "67741000119109", 0),
    (UNSCORED, "CHB"): ("complete heart block", "27885002", 0),
    (SCORED, "LQT"): ("prolonged qt interval", "111975006", 0),
}


def _cited(entry) -> tuple[str, str]:
    table, rest = entry.source.split(" row ", 1)
    return table, rest.split(" ", 1)[0]


@pytest.mark.parametrize("table", [PTBXL, CPSC2018], ids=["ptbxl", "cpsc2018"])
def test_every_entry_is_a_snomed_code_citing_a_published_row(table) -> None:
    for label, entry in table.items():
        assert entry.system == SNOMED and entry.code.isdigit(), label
        assert entry.source.startswith((SCORED, UNSCORED)) and " row " in entry.source, label


def test_the_codes_are_those_of_the_cited_rows() -> None:
    checked = 0
    for entry in [*PTBXL.values(), *CPSC2018.values()]:
        row = PUBLISHED.get(_cited(entry))
        if row is not None:
            assert (entry.display, entry.code) == row[:2], entry
            checked += 1
    assert checked >= 20


def test_cpsc2018s_nine_classes_are_the_nine_rows_of_the_challenges_cpsc_column() -> None:
    """The Challenge re-coded CPSC 2018 itself: its CPSC column counts records in exactly
    nine rows, one per class (NORM is sinus rhythm there, VPC ventricular ectopics)."""
    assert set(CPSC2018) == set(CPSC_LABELS)
    cpsc_rows = {key for key, row in PUBLISHED.items() if row[2] > 0}
    assert {_cited(entry) for entry in CPSC2018.values()} == cpsc_rows


def test_a_label_without_a_published_code_is_local_only() -> None:
    """PTB-XL's NORM (a normal ECG, not sinus rhythm), STTC, CD (conduction disturbance,
    not the Challenge's CD, cardiac dysrhythmia) and HYP: no published SNOMED code."""
    table = CodeTable("ptbxl")
    for label in ("NORM", "STTC", "CD", "HYP"):
        assert table.coding(label).system == LOCAL
        assert [c.system for c in table.codings(label)] == [LOCAL]
    assert [c.system for c in table.codings("MI")] == [SNOMED, LOCAL]
    assert CodeTable("cpsc2018").coding("NORM").code == "426783006"
    assert CodeTable(None).coding("MI").system == LOCAL


def test_a_model_card_adds_and_overrides_codes(tmp_path) -> None:
    from tests.test_card import make_card

    codes = {
        "CD": {"system": "http://example.org/ecg", "code": "cd-1", "display": "conduction"},
        "MI": {"system": SNOMED, "code": "22298006", "display": "Myocardial infarction"},
    }
    card = make_card(labels=["CD", "MI"], thresholds={"CD": 0.3, "MI": 0.5}, codes=codes)
    card.save(tmp_path)
    loaded = ModelCard.load(tmp_path)
    table = CodeTable(loaded.data["dataset"], loaded.codes)
    assert table.coding("CD").fhir() == codes["CD"]
    assert table.coding("MI").code == "22298006" and table.coding("MI").source == "model card"
    assert table.coding("STTC").system == LOCAL


def test_the_study_code_is_loinc_ekg_study() -> None:
    assert ECG_STUDY.fhir() == {"system": "http://loinc.org", "code": "11524-6",
                                "display": "EKG study"}  # fmt: skip
