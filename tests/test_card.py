"""Model card round trip and validation (no torch needed)."""

import json
from pathlib import Path

import pytest

from mrm_edge.card import ModelCard, ModelCardError

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def make_card(**over) -> ModelCard:
    base = dict(
        name="t",
        task="superdiagnostic",
        labels=["CD", "NORM"],
        sampling_rate=100,
        window_samples=1000,
        leads=LEADS,
        units="mV",
        normalization={"mean": [0.0] * 12, "std": [1.0] * 12, "leads": LEADS},
        preset="small",
        architecture={"width": 64},
        head_fusion="mean",
        thresholds={"CD": 0.3, "NORM": 0.6},
        threshold_method="F1 on validation",
        metrics={"test": {"fused": {"auc": 0.9}}},
        data={"dataset": "ptbxl"},
        training={"epochs": 1},
        code_version={"mrm_edge": "0.1.0"},
    )
    base.update(over)
    return ModelCard(**base)


def test_round_trip(tmp_path: Path) -> None:
    card = make_card()
    card.save(tmp_path)
    back = ModelCard.load(tmp_path)
    assert back == card
    assert back.window_seconds == 10.0
    assert json.loads((tmp_path / "card.json").read_text())["window_seconds"] == 10.0


def test_missing_card_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match=r"card\.json: no model card"):
        ModelCard.load(tmp_path)


def test_corrupt_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text('{"name": ')
    with pytest.raises(ModelCardError, match="not readable JSON") as e:
        ModelCard.load(tmp_path)
    assert "\n" not in str(e.value)


def test_missing_and_unknown_fields(tmp_path: Path) -> None:
    d = make_card().to_dict()
    del d["labels"]
    (tmp_path / "card.json").write_text(json.dumps(d))
    with pytest.raises(ModelCardError, match=r"missing field.*labels"):
        ModelCard.load(tmp_path)
    d = {**make_card().to_dict(), "colour": "red"}
    (tmp_path / "card.json").write_text(json.dumps(d))
    with pytest.raises(ModelCardError, match=r"unknown field.*colour"):
        ModelCard.load(tmp_path)


def test_inconsistent_cards_are_refused() -> None:
    with pytest.raises(ModelCardError, match=r"normalization\.mean"):
        make_card(normalization={"mean": [0.0] * 11, "std": [1.0] * 12}).validate()
    with pytest.raises(ModelCardError, match="thresholds"):
        make_card(thresholds={"CD": 0.5}).validate()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"labels": "CD,NORM"}, "field 'labels' must be a non-empty list of distinct names"),
        ({"labels": ["CD", "CD"]}, "field 'labels' must be a non-empty list"),
        ({"sampling_rate": -100}, "field 'sampling_rate' must be a positive integer, found -100"),
        ({"sampling_rate": True}, "field 'sampling_rate' must be a positive integer, found True"),
        ({"window_samples": 10.5}, "field 'window_samples' must be a positive integer"),
        ({"name": 3}, "field 'name' must be a string, found 3"),
        ({"thresholds": [0.3, 0.6]}, "field 'thresholds' must be a JSON object"),
        ({"thresholds": {"CD": "high", "NORM": 0.6}}, "field 'thresholds.CD' must be a probab"),
        ({"thresholds": {"CD": 0.3}}, "1 thresholds for 2 labels; missing ['NORM']"),
        ({"weights": {"file": "model.pt"}}, "field 'weights.file' must be a .safetensors file"),
        ({"architecture": None}, "field 'architecture' must be a JSON object, found None"),
        ({"codes": ["MI"]}, "field 'codes' must be a JSON object label -> coding"),
        ({"codes": {"CD": {"code": "1"}}}, "field 'codes.CD' must be an object of system, code"),
    ],
)
def test_wrong_types_are_one_line_errors(over: dict, message: str) -> None:
    with pytest.raises(ModelCardError) as e:
        make_card(**over).validate("card.json")
    assert str(e.value).startswith("card.json: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_the_export_record_names_what_changed_field_by_field(tmp_path: Path) -> None:
    from mrm_edge.card import EXPORTED_FIELDS, card_changes, export_record

    card = make_card()
    record = json.loads(json.dumps(export_record(card)))  # as read back from a sidecar
    assert set(record["fields"]) == set(EXPORTED_FIELDS) and card_changes(record, card) == []
    # Fields the runtime does not read may change (metrics, intended use).
    assert card_changes(record, make_card(metrics={}, intended_use="other")) == []
    tuned = make_card(thresholds={"CD": 0.01, "NORM": 0.6}, alarm_labels=["CD"])
    assert card_changes(record, tuned) == [
        ("thresholds.CD", 0.01, 0.3),
        ("alarm_labels", ["CD"], None),
    ]
    moved = make_card(window_samples=500, normalization={**card.normalization, "std": [2.0] * 12})
    assert [path for path, _, _ in card_changes(record, moved)] == [
        "window_samples",
        "normalization.std",
    ]


def test_a_record_whose_values_were_edited_is_not_a_record() -> None:
    from mrm_edge.card import card_changes, export_record

    card = make_card(thresholds={"CD": 0.01, "NORM": 0.6})
    record = export_record(make_card())
    record["fields"]["thresholds"]["CD"] = 0.01  # made to match the edited card, hash kept
    assert card_changes(record, card) is None
    assert card_changes({"fields": "x"}, card) is None and card_changes(None, card) is None
