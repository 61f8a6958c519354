"""JSON sidecars: ``<artifact>.json`` beside every exported file.

A sidecar says what the artifact is (precision, I/O names and shapes,
labels), where it came from (the source model card's hash, tool versions)
and how well it reproduces its reference (gate figures measured at export),
plus the artifact's own SHA-256 so a corrupted or swapped file is detected.

This module writes them; where they are and how they are read and verified is the model
directory's contract, :mod:`mrm_edge.artifacts` (``sidecar_path``, ``read_sidecar``,
``verify_artifact``, ``onnx_io``).
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mrm_edge.artifacts import sidecar_path
from mrm_edge.card import sha256_file

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
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in TOOLS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


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


__all__ = ["tool_versions", "write_sidecar"]
