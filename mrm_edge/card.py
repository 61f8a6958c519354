"""The model card (``card.json`` beside ``model.safetensors``): what a runtime needs to use a
trained model correctly and a reader needs to judge it. Plain JSON, no torch."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mrm_edge.fileio import sha256_file

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FORMAT = 1


class ModelCardError(ValueError):
    """A model card that is missing, unreadable or inconsistent (one-line message)."""


@dataclass
class ModelCard:
    name: str
    task: str
    labels: list[str]
    sampling_rate: int
    window_samples: int
    leads: list[str]
    units: str
    normalization: dict[str, Any]  # {"method", "mean": [12], "std": [12], "fitted_on"}
    preset: str
    architecture: dict[str, Any]  # MRMNetConfig.to_dict()
    head_fusion: str
    thresholds: dict[str, float]
    threshold_method: str
    metrics: dict[str, Any]
    data: dict[str, Any]  # provenance: dataset, records, folds, citation, licence
    training: dict[str, Any]
    code_version: dict[str, Any]
    weights: dict[str, Any] = field(default_factory=dict)  # {"file", "sha256"}
    intended_use: str = ""
    alarm_labels: list[str] | None = None
    """Labels that are alarm findings (e.g. MI, STTC); None: ``default_alarm_labels``. A
    label outside it (NORM) above its threshold is "no finding", never an alarm."""
    codes: dict[str, dict[str, str]] | None = None
    """Label -> {"system", "code", "display"}: codes added to or overriding the published
    table results are sent with (runtime/outbox/codes.py)."""
    format: int = CARD_FORMAT

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sampling_rate

    @property
    def alarm_findings(self) -> tuple[str, ...]:
        """The labels that raise alarms: ``alarm_labels``, or the documented default."""
        if self.alarm_labels is None:
            return default_alarm_labels(self.labels)
        return tuple(lab for lab in self.labels if lab in self.alarm_labels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window_seconds"] = self.window_seconds
        return d

    def save(self, directory: Path) -> Path:
        path = Path(directory) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "card") -> ModelCard:
        d = dict(d)
        d.pop("window_seconds", None)
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in required if k not in d]
        if missing:
            raise ModelCardError(f"{source}: missing field(s) {', '.join(missing)}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelCardError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
        card = cls(**d)
        card.validate(source)
        return card

    @classmethod
    def load(cls, directory: Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            hint = _pickle_hint(directory, "a model directory holds card.json + model.safetensors")
            raise ModelCardError(
                f"{path}: no model card (expected {CARD_FILE} in the model directory){hint}"
            )
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelCardError(f"{path}: not readable JSON ({e})") from e
        if not isinstance(d, dict):
            raise ModelCardError(f"{path}: expected a JSON object, found {type(d).__name__}")
        return cls.from_dict(d, source=str(path))

    def validate(self, source: str = "card") -> None:
        """Types and consistency of every field the runtime relies on (one-line errors).

        A card is read from disk and may have been edited by hand: a ``labels`` string
        instead of a list would be iterated character by character, a negative rate would
        resample to nonsense, so both are refused here with the field and what was expected.
        """
        if not _is_int(self.format) or self.format != CARD_FORMAT:
            raise _field(source, "format", f"the number {CARD_FORMAT}", self.format)
        # The plain-typed fields, checked by their declared type (thresholds, labels, leads
        # and alarm_labels have rules of their own below).
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "str" and not isinstance(value, str):
                raise _field(source, f.name, "a string", value)
            if f.type == "dict[str, Any]" and not isinstance(value, dict):
                raise _field(source, f.name, "a JSON object", value)
        for key in ("labels", "leads"):
            v = getattr(self, key)
            if (
                not isinstance(v, list)
                or not v
                or not all(isinstance(x, str) and x for x in v)
                or len(set(v)) != len(v)
            ):
                raise _field(source, key, "a non-empty list of distinct names", v)
        for key in ("sampling_rate", "window_samples"):
            v = getattr(self, key)
            if not _is_int(v) or v <= 0:
                raise _field(source, key, "a positive integer", v)
        n_leads = len(self.leads)
        for key in ("mean", "std"):
            v = self.normalization.get(key)
            if not isinstance(v, list) or len(v) != n_leads or not all(_is_number(x) for x in v):
                raise ModelCardError(
                    f"{source}: field 'normalization.{key}' must be a list of {n_leads} numbers"
                )
        if not isinstance(self.thresholds, dict):
            raise _field(source, "thresholds", "a JSON object label -> threshold", self.thresholds)
        if set(self.thresholds) != set(self.labels):
            missing = [lab for lab in self.labels if lab not in self.thresholds]
            extra = [k for k in self.thresholds if k not in self.labels]
            raise ModelCardError(
                f"{source}: field 'thresholds' must name exactly the labels "
                f"({len(self.thresholds)} thresholds for {len(self.labels)} labels; "
                f"missing {missing or 'none'}, extra {extra or 'none'})"
            )
        for lab, t in self.thresholds.items():
            if not _is_number(t) or not 0.0 <= t <= 1.0:
                raise _field(source, f"thresholds.{lab}", "a probability in [0, 1]", t)
        if self.alarm_labels is not None:
            a = self.alarm_labels
            if not isinstance(a, list) or not all(isinstance(x, str) for x in a):
                raise _field(source, "alarm_labels", "a list of label names", a)
            unknown = [x for x in a if x not in self.labels]
            if unknown:
                raise ModelCardError(
                    f"{source}: field 'alarm_labels' names {', '.join(unknown)}, not in "
                    f"'labels' ({', '.join(self.labels)})"
                )
        if self.codes is not None and not isinstance(self.codes, dict):
            raise _field(source, "codes", "a JSON object label -> coding", self.codes)
        for lab, c in (self.codes or {}).items():
            if not isinstance(c, dict) or not all(
                isinstance(c.get(k), str) and c[k] for k in ("system", "code", "display")
            ):
                raise _field(source, f"codes.{lab}", "an object of system, code, display", c)
        file = self.weights.get("file", WEIGHTS_FILE)
        if not isinstance(file, str) or not file.endswith(".safetensors"):
            raise _field(
                source,
                "weights.file",
                "a .safetensors file (checkpoints are safetensors-only; pickle is never loaded)",
                file,
            )


# Labels that mean "nothing abnormal found": above threshold they are a finding of health,
# so they never raise an alarm unless a card's ``alarm_labels`` says otherwise.
NORMAL_LABELS = frozenset({"NORM", "SR", "SNR"})


def default_alarm_labels(labels: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A card without ``alarm_labels``: every label except the normal ones (NORM in PTB-XL's
    tasks, SR / SNR for sinus rhythm in its rhythm task and CPSC 2018's "Normal" class)."""
    return tuple(lab for lab in labels if lab.upper() not in NORMAL_LABELS)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _field(source: str, key: str, expected: str, found: Any) -> ModelCardError:
    return ModelCardError(f"{source}: field '{key}' must be {expected}, found {shown(found)}")


# =========================================================================== export record

#: The card's fields the runtime reads: each ONNX sidecar records their values as exported
#: (:func:`export_record`), and ``DeployedModel.load`` refuses a card that differs from them.
EXPORTED_FIELDS = (
    "name",
    "labels",
    "thresholds",
    "alarm_labels",
    "sampling_rate",
    "window_samples",
    "leads",
    "units",
    "normalization",
    "head_fusion",
    "architecture",
    "weights",
)
#: Of those, the decision policy a deliberate re-tune may change after export (opt-in:
#: ``--accept-card-tuning``); the rest describe what the graph computes and need a re-export.
TUNABLE_FIELDS = ("thresholds", "alarm_labels")


def export_record(card: ModelCard) -> dict[str, Any]:
    """What an export records of ``card``: the values of :data:`EXPORTED_FIELDS` and their
    SHA-256 (canonical JSON), so a later edit is detected and named field by field."""
    values = {key: getattr(card, key) for key in EXPORTED_FIELDS}
    return {"fields": values, "sha256": _canonical_sha256(values)}


def card_changes(record: Any, card: ModelCard) -> list[tuple[str, Any, Any]] | None:
    """``(field path, now, exported)`` for each field of ``card`` that differs from an
    :func:`export_record` (dict fields compared key by key: ``thresholds.MI``); None when the
    record is not one (malformed, or edited so its values no longer match its SHA-256)."""
    fields_ = record.get("fields") if isinstance(record, dict) else None
    if not isinstance(fields_, dict) or record.get("sha256") != _canonical_sha256(fields_):
        return None
    now = export_record(card)
    if now["sha256"] == record["sha256"]:
        return []
    changes: list[tuple[str, Any, Any]] = []
    for key in EXPORTED_FIELDS:
        _diff(key, now["fields"][key], fields_.get(key), changes)
    return changes


def _diff(path: str, now: Any, then: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(now, dict) and isinstance(then, dict):
        for key in [*then, *(k for k in now if k not in then)]:
            _diff(f"{path}.{key}", now.get(key), then.get(key), out)
    elif now != then:
        out.append((path, now, then))


def _canonical_sha256(values: Any) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters (values quoted in one-line errors)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# Suffixes of torch.save / pickle checkpoints: named in errors, never opened.
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def pickle_files(directory: Path) -> list[str]:
    """Names of pickle-style checkpoint files in ``directory`` (they are never loaded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)


def _pickle_hint(directory: Path, advice: str) -> str:
    """``"; found a.pt, but ... (advice)"`` when ``directory`` holds pickle files, else ``""``."""
    pickles = pickle_files(Path(directory))
    if not pickles:
        return ""
    return f"; found {', '.join(pickles)}, but pickle checkpoints are never loaded ({advice})"


def verify_weights(directory: Path, card: ModelCard) -> Path:
    """The card's weights file after checking it exists, is safetensors (not pickle), matches
    the card's SHA-256 and is complete; ModelCardError (one line) naming the file otherwise.

    Torch-free: the runtime calls it to decide whether the PyTorch backend may run.
    """
    directory = Path(directory)
    card_path = directory / CARD_FILE
    path = directory / (card.weights.get("file") or WEIGHTS_FILE)
    if not path.is_file():
        hint = _pickle_hint(
            directory,
            "safetensors only: convert them with safetensors.torch.save_file where trusted",
        )
        raise ModelCardError(f"{path}: weights file missing (named by {card_path}){hint}")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        raise ModelCardError(
            f"{path}: a pickle / torch.save file, not safetensors; checkpoints are "
            "safetensors-only and are never unpickled"
        )
    expected = card.weights.get("sha256")
    if expected:
        found = sha256_file(path)
        if found != expected:
            raise ModelCardError(
                f"{path}: SHA-256 does not match the card's 'weights.sha256' (expected "
                f"{str(expected)[:12]}..., found {found[:12]}...; corrupted, truncated or replaced)"
            )
    problem = safetensors_problem(path)
    if problem:
        raise ModelCardError(f"{path}: not a complete safetensors file ({problem})")
    return path


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (header and sizes only), or None.

    Catches truncation even when no checksum was recorded: the header names the byte range
    of every tensor, and the file must end exactly where the last one does.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            return f"{size} bytes, shorter than the 8-byte header length"
        n = int.from_bytes(raw, "little")
        if n > size - 8:
            return f"header of {n} bytes announced, {size - 8} present"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return f"header is not JSON: {e}"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    try:
        end = max(
            (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
            default=0,
        )
    except (TypeError, KeyError, IndexError, ValueError):
        return "header has a tensor without 'data_offsets'"
    if 8 + n + end != size:
        return f"tensors end at byte {8 + n + end}, file has {size} bytes (truncated?)"
    return None
