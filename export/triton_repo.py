"""A Triton Inference Server model repository for a model directory (``mrm-edge export
--triton-repo DIR``; ``mrm-edge serve`` writes one for its own server): one Triton model per
runnable variant (``trt``, ``onnx``, ``cpu``), each config with the card's identity in
``parameters``. Layout and the defaults' reasons: docs/triton.md."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrm_edge.runtime.model import DeployedModel

from mrm_edge.artifacts import onnx_file
from mrm_edge.fileio import sha256_file
from mrm_edge.served_identity import model_identity

#: The ONNX variants the Python-backend (ONNX Runtime CPU) models serve: the symmetric INT8
#: and FP16 files are no faster than FP32 on ONNX Runtime CPU.
CPU_VARIANTS: tuple[str, ...] = ("int8", "fp32")
PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")
# Triton's own limit for a model whose engine profile is unknown.
DEFAULT_TRT_MAX_BATCH = 32
#: Triton's queue delay by default (ms): the front-ends already batch, so a server delay
#: would be a second wait (docs/triton.md, "The server's two defaults").
DEFAULT_QUEUE_DELAY_MS = 0.0


@dataclass(frozen=True)
class RepoModel:
    """One Triton model of the repository."""

    name: str
    kind: str
    """``tensorrt``, ``onnxruntime`` or ``python`` (what Triton backend it needs)."""
    variant: str
    precision: str
    local: bool
    """Whether the ``tritonserver`` bundled in nvidia-pytriton can load it (Python backend)."""


@dataclass
class TritonRepo:
    """What :func:`write_triton_repo` wrote."""

    directory: Path
    model: DeployedModel
    """The verified model directory it was written from."""
    models: list[RepoModel] = field(default_factory=list)

    @property
    def local_models(self) -> list[str]:
        return [m.name for m in self.models if m.local]


def _pbtxt_value(value: Any, indent: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.isupper() and value.replace("_", "").isalnum():
        return value  # an enum (TYPE_FP32, KIND_CPU)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        inner = indent + "  "
        body = "".join(_pbtxt_field(k, v, inner) for k, v in value.items())
        return "{\n" + body + indent + "}"
    raise TypeError(f"no pbtxt form for {value!r}")


def _pbtxt_field(key: str, value: Any, indent: str) -> str:
    if isinstance(value, list):
        if all(not isinstance(v, dict) for v in value):
            items = ", ".join(_pbtxt_value(v, indent) for v in value)
            return f"{indent}{key}: [ {items} ]\n"
        return "".join(f"{indent}{key} {_pbtxt_value(v, indent)}\n" for v in value)
    sep = " " if isinstance(value, dict) else ": "
    return f"{indent}{key}{sep}{_pbtxt_value(value, indent)}\n"


def config_pbtxt(config: dict[str, Any]) -> str:
    """``config`` (the model configuration as nested dicts/lists) in protobuf text format.
    A list of dicts is a repeated message; ``parameters`` is a ``{key: string}`` map."""
    out = []
    for key, value in config.items():
        if key == "parameters":
            for k, v in value.items():
                item = {"key": k, "value": {"string_value": str(v)}}
                out.append(_pbtxt_field("parameters", item, ""))
        else:
            out.append(_pbtxt_field(key, value, ""))
    return "".join(out)


def _io(model: DeployedModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """Input and output of the configs, named and sized by the FP32 sidecar and the card."""
    side = model.onnx["fp32"].sidecar
    in_name = (side.get("inputs") or [{}])[0].get("name", "ecg")
    out_name = (side.get("outputs") or [{}])[0].get("name", "probabilities")
    dims_in = [len(model.card.leads), model.card.window_samples]
    tensor_in = {"name": in_name, "data_type": "TYPE_FP32", "dims": dims_in}
    tensor_out = {
        "name": out_name,
        "data_type": "TYPE_FP32",
        "dims": [len(model.card.labels)],
        "label_filename": "labels.txt",
    }
    return tensor_in, tensor_out


def _config(
    m: RepoModel,
    model: DeployedModel,
    runner: dict[str, Any],
    max_batch: int,
    params: dict[str, str],
    *,
    preferred: int,
    max_delay_ms: float,
    instances: int,
) -> dict[str, Any]:
    tensor_in, tensor_out = _io(model)
    return {
        "name": m.name,
        **runner,
        "max_batch_size": max_batch,
        "input": [tensor_in],
        "output": [tensor_out],
        "dynamic_batching": {
            "preferred_batch_size": [min(preferred, max_batch)],
            "max_queue_delay_microseconds": round(max_delay_ms * 1000),
        },
        "instance_group": [{"count": instances, "kind": "KIND_CPU" if m.local else "KIND_GPU"}],
        "model_warmup": [
            {
                "name": "zeros",
                "batch_size": 1,
                "inputs": {
                    "key": tensor_in["name"],
                    "value": {
                        "data_type": "TYPE_FP32",
                        "dims": tensor_in["dims"],
                        "zero_data": True,
                    },
                },
            }
        ],
        "parameters": params,
    }


def _write_model(out: Path, name: str, config: dict[str, Any], files: dict[str, Path]) -> None:
    folder = out / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(config_pbtxt(config))
    for target, source in files.items():
        shutil.copyfile(source, folder / "1" / target)


def write_triton_repo(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    max_batch: int = 32,
    max_delay_ms: float = DEFAULT_QUEUE_DELAY_MS,
    instances: int = 1,
    cpu_threads: int = 0,
    cpu_spinning: bool = True,
    only_local: bool = False,
    accept_card_tuning: bool = False,
) -> TritonRepo:
    """Write the repository for ``model_dir`` into ``out_dir``; the options are ``mrm-edge
    serve``'s (docs/triton.md), ``only_local`` writes only what the bundled server can load.
    Raises ValueError (one line) when the model directory has nothing to serve."""
    model = DeployedModel.load(model_dir, accept_card_tuning=accept_card_tuning)
    if "fp32" not in model.onnx:
        raise ValueError(
            f"{model.directory}: no verified {onnx_file('fp32')} (the repository's identity "
            "is its SHA-256; run `mrm-edge export` first)"
        )
    if max_batch < 1 or instances < 1 or max_delay_ms < 0:
        raise ValueError("triton repository: max batch and instances >= 1, max delay >= 0 ms")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    repo = TritonRepo(out, model)
    base = model_identity(model)  # what a front-end compares with its own model directory
    labels = "".join(f"{lab}\n" for lab in model.card.labels)
    knobs = {"preferred": max_batch, "max_delay_ms": max_delay_ms, "instances": instances}

    def add(
        m: RepoModel,
        runner: dict[str, Any],
        files: dict[str, Path],
        batch: int,
        extra: dict[str, str],
    ) -> None:
        params = {**base, "mrm_edge.variant": m.variant, "mrm_edge.precision": m.precision}
        config = _config(m, model, runner, batch, {**params, **extra}, **knobs)
        _write_model(out, m.name, config, files)
        (out / m.name / "labels.txt").write_text(labels)
        repo.models.append(m)

    if not only_local:
        for engine in model.engines:
            profile = engine.key.get("profile") or [1, DEFAULT_TRT_MAX_BATCH, DEFAULT_TRT_MAX_BATCH]
            name = f"{model.card.name}-trt-{engine.precision}"
            m = RepoModel(name, "tensorrt", "engine", engine.precision, False)
            extra = {"mrm_edge.engine_sha256": sha256_file(engine.path)}
            runner = {"platform": "tensorrt_plan"}
            add(m, runner, {"model.plan": engine.path}, int(profile[-1]), extra)
        for variant, art in model.onnx.items():
            m = RepoModel(
                f"{model.card.name}-onnx-{variant}", "onnxruntime", variant, art.precision, False
            )
            add(m, {"platform": "onnxruntime_onnx"}, {"model.onnx": art.path}, max_batch, {})
    for variant in CPU_VARIANTS:
        art = model.onnx.get(variant)
        if art is None:
            continue
        m = RepoModel(f"{model.card.name}-cpu-{variant}", "python", variant, art.precision, True)
        files = {"model.py": PYTHON_MODEL, art.name: art.path}
        extra = {
            "onnx_file": art.name,
            "intra_op_threads": str(cpu_threads),
            "allow_spinning": "1" if cpu_spinning else "0",
        }
        add(m, {"backend": "python"}, files, max_batch, extra)
    return repo
