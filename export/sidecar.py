"""Writes the JSON sidecar ``<artifact>.json`` beside every exported file (what it records:
docs/export.md, the table of files); where sidecars live and how they are read and verified is
the model directory's contract, :mod:`mrm_edge.artifacts`."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from mrm_edge.export.cost import cost_record

from mrm_edge.artifacts import ONNX_FILES, sidecar_path, verify_artifact
from mrm_edge.card import CARD_FILE, ModelCard, card_changes, export_record
from mrm_edge.fileio import sha256_file

TOOLS = (
    "mrm-edge",
    "torch",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "onnxconverter-common",
    "numpy",
    "tensorrt",
)


def tool_versions() -> dict[str, str | None]:
    from mrm_edge.runtime.cpu_timing import installed_versions

    return {"python": platform.python_version(), **installed_versions(TOOLS)}


def write_sidecar(artifact: Path, info: dict[str, Any]) -> Path:
    artifact = Path(artifact)
    doc = {
        "artifact": artifact.name,
        "sha256": sha256_file(artifact),
        "bytes": artifact.stat().st_size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **info,
        "tools": tool_versions(),
    }
    path = sidecar_path(artifact)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def restamp(model_dir: Path) -> list[Path]:
    """Add what an earlier export did not record to the ONNX sidecars of ``model_dir``: the
    per-field card record (``exported_card``) and the cost per window (``cost``, counted on
    the intact FP32 graph); the sidecars rewritten.

    Honest by construction: a sidecar is stamped only when its file is intact and the card is
    provably the one it was exported with (byte-identical to its ``source_card_sha256``, or
    equal to a record it already holds); otherwise ValueError, one line: an edited card is
    never laundered into an "exported" one (restore it, or re-export).
    """
    model_dir = Path(model_dir)
    card_path = model_dir / CARD_FILE
    card = ModelCard.load(model_dir)
    found = [model_dir / f for f in ONNX_FILES.values() if sidecar_path(model_dir / f).is_file()]
    if not found:
        raise ValueError(f"{model_dir}: no ONNX sidecar to restamp (run `mrm-edge export`)")
    docs = []
    for artifact in found:
        doc = verify_artifact(artifact)
        if "exported_card" in doc:
            unchanged = card_changes(doc["exported_card"], card) == []
        else:
            unchanged = doc.get("source_card_sha256") == sha256_file(card_path)
        if not unchanged:
            raise ValueError(
                f"{card_path}: not the card {artifact.name} was exported with (its sidecar's "
                "record differs); --restamp records only an unchanged card: restore it or "
                "re-export"
            )
        docs.append((artifact, doc))
    fp32 = model_dir / ONNX_FILES["fp32"]
    cost = cost_record(fp32) if any(a == fp32 for a, _ in docs) else None
    for artifact, doc in docs:  # all checked before any is written
        doc["exported_card"] = export_record(card)
        if cost is not None:
            doc["cost"] = cost
        sidecar_path(artifact).write_text(json.dumps(doc, indent=2) + "\n")
    return [sidecar_path(a) for a, _ in docs]
