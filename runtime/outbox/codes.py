"""The label code table: each model label as a coding a receiver understands (SNOMED CT),
read from a PUBLISHED mapping and citing its row, never made up. A label no published table
codes gets only the local system ``urn:mrm-edge:label``; a model card's ``codes`` adds or
overrides entries. Sources and what was left uncoded, and why: docs/outbox.md."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
LOCAL = "urn:mrm-edge:label"

#: The PhysioNet/CinC Challenge 2021's tables (BSD 2-Clause), read at this commit.
CHALLENGE = (
    "github.com/physionetchallenges/evaluation-2021@e2a75fc01f729cb74cc4e853e054ce81e28381fc"
)
SCORED = f"{CHALLENGE}:dx_mapping_scored.csv"
UNSCORED = f"{CHALLENGE}:dx_mapping_unscored.csv"


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str
    source: str
    """Where the code was read: a published file and its row, the model card, or "local"."""

    def fhir(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


#: The ECG study a report is about (LOINC 11524-6, long common name "EKG study";
#: https://loinc.org/11524-6; LOINC's class CARD.ECG).
ECG_STUDY = Coding(LOINC, "11524-6", "EKG study", "https://loinc.org/11524-6")


def _row(table: str, code: str, dx: str, abbreviation: str) -> Coding:
    """A SNOMED CT code as the Challenge's row gives it (display: the row's Dx text)."""
    return Coding(SNOMED, code, dx, f"{table} row {abbreviation} ({dx})")


# PTB-XL's statements (scp_statements.csv) whose description names the same finding as a
# Challenge row. Superclasses: only MI is such a row; NORM ("normal ECG"), STTC, CD and HYP
# have none (the Challenge's "CD" is cardiac dysrhythmia, not conduction disturbance).
PTBXL: dict[str, Coding] = {
    "MI": _row(UNSCORED, "164865005", "myocardial infarction", "MI"),
    "AMI": _row(UNSCORED, "54329005", "anterior myocardial infarction", "AnMI"),
    "ISCAN": _row(UNSCORED, "426434006", "anterior ischemia", "AnMIs"),
    "ISCIN": _row(UNSCORED, "425419005", "inferior ischaemia", "IIs"),
    "ISCLA": _row(UNSCORED, "425623009", "lateral ischaemia", "LIs"),
    "LVH": _row(UNSCORED, "164873001", "left ventricular hypertrophy", "LVH"),
    "RVH": _row(UNSCORED, "89792004", "right ventricular hypertrophy", "RVH"),
    "LAO/LAE": _row(UNSCORED, "67741000119109", "left atrial enlargement", "LAE"),
    "1AVB": _row(SCORED, "270492004", "1st degree av block", "IAVB"),
    "2AVB": _row(UNSCORED, "195042002", "2nd degree av block", "IIAVB"),
    "3AVB": _row(UNSCORED, "27885002", "complete heart block", "CHB"),
    "CLBBB": _row(SCORED, "733534002", "complete left bundle branch block", "CLBBB"),
    "CRBBB": _row(SCORED, "713427006", "complete right bundle branch block", "CRBBB"),
    "ILBBB": _row(UNSCORED, "251120003", "incomplete left bundle branch block", "ILBBB"),
    "IRBBB": _row(SCORED, "713426002", "incomplete right bundle branch block", "IRBBB"),
    "IVCD": _row(SCORED, "698252002", "nonspecific intraventricular conduction disorder", "NSIVCB"),
    "LAFB": _row(SCORED, "445118002", "left anterior fascicular block", "LAnFB"),
    "LPFB": _row(UNSCORED, "445211001", "left posterior fascicular block", "LPFB"),
    "WPW": _row(UNSCORED, "74390002", "wolff parkinson white pattern", "WPW"),
    "ABQRS": _row(UNSCORED, "164951009", "abnormal QRS", "abQRS"),
    "PAC": _row(SCORED, "284470004", "premature atrial contraction", "PAC"),
    "PVC": _row(SCORED, "427172004", "premature ventricular contractions", "PVC"),
    "LPR": _row(SCORED, "164947007", "prolonged pr interval", "LPR"),
    "LNGQT": _row(SCORED, "111975006", "prolonged qt interval", "LQT"),
    "LVOLT": _row(SCORED, "251146004", "low qrs voltages", "LQRSV"),
    "STD_": _row(UNSCORED, "429622005", "st depression", "STD"),
    "STE_": _row(UNSCORED, "164931005", "st elevation", "STE"),
    "INVT": _row(SCORED, "59931005", "t wave inversion", "TInv"),
    "TAB_": _row(SCORED, "164934002", "t wave abnormal", "TAb"),
    "SR": _row(SCORED, "426783006", "sinus rhythm", "NSR"),
    "STACH": _row(SCORED, "427084000", "sinus tachycardia", "STach"),
    "SBRAD": _row(SCORED, "426177001", "sinus bradycardia", "SB"),
    "SARRH": _row(SCORED, "427393009", "sinus arrhythmia", "SA"),
    "AFIB": _row(SCORED, "164889003", "atrial fibrillation", "AF"),
    "AFLT": _row(SCORED, "164890007", "atrial flutter", "AFL"),
    "SVTAC": _row(UNSCORED, "426761007", "supraventricular tachycardia", "SVT"),
    "PSVT": _row(UNSCORED, "67198005", "paroxysmal supraventricular tachycardia", "PSVT"),
}  # fmt: skip

# CPSC 2018's nine classes as the Challenge coded them: the nine rows (and only those) with a
# record count in the tables' CPSC column. Its "Normal" class is sinus rhythm there, and its
# LBBB/RBBB classes the plain bundle branch blocks (the Challenge scores them as the same
# diagnosis as the complete ones PTB-XL's CLBBB/CRBBB are coded with above).
CPSC2018: dict[str, Coding] = {
    "1AVB": _row(SCORED, "270492004", "1st degree av block", "IAVB"),
    "AFIB": _row(SCORED, "164889003", "atrial fibrillation", "AF"),
    "CLBBB": _row(SCORED, "164909002", "left bundle branch block", "LBBB"),
    "CRBBB": _row(SCORED, "59118001", "right bundle branch block", "RBBB"),
    "NORM": _row(SCORED, "426783006", "sinus rhythm", "NSR"),
    "PAC": _row(SCORED, "284470004", "premature atrial contraction", "PAC"),
    "STD_": _row(UNSCORED, "429622005", "st depression", "STD"),
    "STE_": _row(UNSCORED, "164931005", "st elevation", "STE"),
    "VPC": _row(UNSCORED, "164884008", "ventricular ectopics", "VEB"),
}  # fmt: skip

#: A model card's ``data.dataset`` → the table its labels are coded by.
TABLES: dict[str, dict[str, Coding]] = {"ptbxl": PTBXL, "cpsc2018": CPSC2018}


class CodeTable:
    """The codings of one model's labels: the card's ``codes`` first, then the table of
    the dataset it was trained on, else the label in the local system."""

    def __init__(
        self, dataset: str | None = None, overrides: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        self.table = dict(TABLES.get(dataset or "", {}))
        for label, c in (overrides or {}).items():
            self.table[label] = Coding(c["system"], c["code"], c["display"], "model card")

    def coding(self, label: str) -> Coding:
        found = self.table.get(label)
        return found or Coding(LOCAL, label, label, "local: no published code")

    def codings(self, label: str) -> list[Coding]:
        """The label's codings: its published or card code, and always the local one (so a
        receiver can map the model's own label whatever it codes)."""
        local = Coding(LOCAL, label, label, "local")
        found = self.table.get(label)
        return [found, local] if found and found.system != LOCAL else [local]
