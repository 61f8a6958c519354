"""JSON sidecars: ``<artifact>.json`` beside every exported file.

A sidecar says what the artifact is (precision, I/O names and shapes,
labels), where it came from (the source model card's hash, tool versions)
and how well it reproduces its reference (gate figures measured at export),
plus the artifact's own SHA-256 so a corrupted or swapped file is detected.
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

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


def onnx_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(v) -> dict[str, Any]:
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {
            "name": v.name,
            "dtype": onnx.TensorProto.DataType.Name(t.elem_type).lower(),
            "shape": dims,
        }

    return {
        "inputs": [describe(v) for v in model.graph.input],
        "outputs": [describe(v) for v in model.graph.output],
    }


def sidecar_path(artifact: Path) -> Path:
    return Path(str(artifact) + ".json")


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


def read_sidecar(artifact: Path) -> dict[str, Any]:
    path = sidecar_path(artifact)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{path}: sidecar missing (expected beside {Path(artifact).name})"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable sidecar ({e})") from e


def verify_artifact(artifact: Path) -> dict[str, Any]:
    """The sidecar of ``artifact`` after checking the artifact's SHA-256 against it."""
    doc = read_sidecar(artifact)
    if not isinstance(doc, dict):
        raise ValueError(f"{sidecar_path(artifact)}: expected a JSON object")
    named = doc.get("artifact")
    if named is not None and named != Path(artifact).name:
        # A sidecar copied from another file vouches for that file, not this one.
        raise ValueError(
            f"{sidecar_path(artifact)}: describes {named!r}, not {Path(artifact).name}"
        )
    if not Path(artifact).is_file():
        raise ValueError(f"{artifact}: file missing (named by {sidecar_path(artifact).name})")
    if sha256_file(Path(artifact)) != doc.get("sha256"):
        raise ValueError(
            f"{artifact}: SHA-256 does not match its sidecar's 'sha256' (corrupted or replaced)"
        )
    return doc


__all__ = [
    "onnx_io",
    "read_sidecar",
    "sidecar_path",
    "tool_versions",
    "verify_artifact",
    "write_sidecar",
]
