"""The model-directory contract: which file holds which ONNX variant, how TensorRT engines
are named, and the JSON sidecar beside every artifact (where it is, how it is verified).

This is the one place that says so; ``mrm-edge export`` writes these names and sidecars, and
the runtime, the bench and the doctor read them. A *variant* names a file, a *precision* the
arithmetic: both INT8 variants are ``"int8"`` (the table of files and what each is for:
docs/export.md). Torch-free: the standard library, ``mrm_edge.fileio`` and ``onnx`` inside
:func:`onnx_io`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrm_edge.fileio import sha256_file


@dataclass(frozen=True)
class OnnxVariant:
    """One ONNX file of a model directory."""

    name: str
    file: str
    precision: str


VARIANTS: dict[str, OnnxVariant] = {
    v.name: v
    for v in (
        OnnxVariant("fp32", "model.onnx", "fp32"),  # the reference the others are gated on
        OnnxVariant("fp16", "model.fp16.onnx", "fp16"),  # GPUs
        OnnxVariant("int8", "model.int8.onnx", "int8"),  # ONNX Runtime CPU: uint8 activations
        OnnxVariant("int8-sym", "model.int8-sym.onnx", "int8"),  # TensorRT, OpenVINO
    )
}
#: Variant → file name, in the order `mrm-edge export` writes them.
ONNX_FILES: dict[str, str] = {name: v.file for name, v in VARIANTS.items()}
#: The BF16 gate record (OpenVINO on ``model.onnx`` at bf16 vs FP32, measured on a BF16 CPU by
#: ``mrm-edge export --bf16``): BF16 is a precision of the runtime, not a file of its own.
BF16_RECORD = "model.bf16-openvino.json"


def _variant(variant: str) -> OnnxVariant:
    try:
        return VARIANTS[variant]
    except (KeyError, TypeError):
        raise ValueError(
            f"ONNX variant {variant!r}: expected one of {', '.join(VARIANTS)}"
        ) from None


def onnx_file(variant: str) -> str:
    """The file name of ``variant`` (``"int8-sym"`` → ``"model.int8-sym.onnx"``)."""
    return _variant(variant).file


def precision_of(variant: str) -> str:
    """The precision of ``variant`` (``"int8-sym"`` → ``"int8"``)."""
    return _variant(variant).precision


def variants_for(precision: str) -> tuple[str, ...]:
    """The variants of ``precision``, in table order (``"int8"`` → ``("int8", "int8-sym")``)."""
    return tuple(name for name, v in VARIANTS.items() if v.precision == precision)


# --- the default model directory ----------------------------------------------------------
#: The model shipped in this source tree (models/ beside the package).
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "mrm-net-ptbxl-superdiagnostic"
#: The edge model shipped beside it: distilled from it, about a sixteenth of its cost per
#: window (docs/model.md#the-edge-model). Chosen with ``--model``; never the default.
EDGE_MODEL_DIR = SHIPPED_MODEL_DIR.with_name("mrm-net-edge-ptbxl-superdiagnostic")
#: Environment variable naming the model directory every command uses without ``--model``.
MODEL_ENV = "MRM_EDGE_MODEL"


def default_model_dir(model_dir: str | os.PathLike[str] | None = None) -> Path:
    """``model_dir`` when given (a ``--model`` option), else ``$MRM_EDGE_MODEL``, else the
    shipped model (:data:`SHIPPED_MODEL_DIR`)."""
    if model_dir:
        return Path(model_dir)
    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else SHIPPED_MODEL_DIR


# =========================================================================== engines

#: The precisions an engine is built at (its file name's first tag).
ENGINE_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
#: Every engine-looking file of a model directory (checked one by one by the loader).
ENGINE_GLOB = "model.*.engine"
_ENGINE_NAME = re.compile(r"^model\.(fp32|fp16|int8)\.([0-9a-f]+)\.engine$")


def engine_filename(key: Any) -> str:
    """``model.<precision>.<digest>.engine`` of a build key (an ``EngineKey``: anything with
    ``precision`` and ``digest()``)."""
    return f"model.{key.precision}.{key.digest()}.engine"


def parse_engine_filename(name: str) -> tuple[str, str] | None:
    """``(precision, digest)`` of an :func:`engine_filename` name, None for any other name."""
    m = _ENGINE_NAME.match(name)
    return (m.group(1), m.group(2)) if m else None


def trtexec_engine_filename(precision: str) -> str:
    """The engine a printed trtexec line writes: ``model.<precision>.trtexec.engine``, a name
    the export never writes (built by hand, it has no sidecar, so the model directory does
    not load it)."""
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision {precision!r}, expected one of {ENGINE_PRECISIONS}")
    return f"model.{precision}.trtexec.engine"


# =========================================================================== sidecars


def sidecar_path(artifact: Path) -> Path:
    """``<artifact>.json``: the sidecar beside an ONNX file or an engine."""
    return Path(str(artifact) + ".json")


def read_sidecar(artifact: Path) -> dict[str, Any]:
    """The sidecar of ``artifact`` as parsed JSON; ValueError (one line) when missing or
    unreadable. The one reader of sidecars: an engine's adds its checks on top
    (``mrm_edge.runtime.backends.tensorrt.engine_file.read_engine_sidecar``)."""
    path = sidecar_path(artifact)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{path}: sidecar missing (expected beside {Path(artifact).name})"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: sidecar is not readable JSON ({e})") from e


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


def onnx_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The graph's inputs and outputs (name, dtype, shape; a named dimension is dynamic), as
    the export records them in the sidecar. Needs the ``onnx`` package (ImportError without)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(v: Any) -> dict[str, Any]:
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
