"""PyTorch → ONNX (FP32): the inference graph only (``InferenceModel``; what stays out:
docs/export.md, "FP32")."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

from mrm_edge.card import CARD_FILE, ModelCard
from mrm_edge.fileio import sha256_file

INPUT_NAME = "ecg"
OUTPUT_NAME = "probabilities"
OPSET = 18  # >= 17 keeps LayerNorm one node; 18 is the dynamo exporter's floor


def card_metadata(card: ModelCard, model_dir: Path, precision: str) -> dict[str, str]:
    """ONNX metadata_props: what a runtime needs to feed the graph correctly."""
    import mrm_edge

    return {
        "mrm_edge.format": "1",
        "mrm_edge.version": mrm_edge.__version__,
        "model_name": card.name,
        "task": card.task,
        "labels": json.dumps(card.labels),
        "thresholds": json.dumps([card.thresholds[lab] for lab in card.labels]),
        "sampling_rate": str(card.sampling_rate),
        "window_samples": str(card.window_samples),
        "leads": json.dumps(card.leads),
        "units": card.units,
        "normalization": "baked into the graph: per-lead (x - mean) / std from the model card",
        "head_fusion": card.head_fusion,
        "precision": precision,
        "source_card_sha256": sha256_file(Path(model_dir) / CARD_FILE),
    }


def set_metadata(model, props: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v


def export_fp32(model_dir: Path, out_path: Path) -> Path:
    """Trace the shipped inference path of ``model_dir`` to ``out_path``.

    Dynamic batch, static [12, window] per sample. The dynamo exporter's
    onnxscript optimiser does the simplification (constant folding, BN folding
    where possible, dead-code removal); the result gets a full checker pass.
    """
    import onnx
    import torch

    from mrm_edge.checkpoint import inference_model, load_model_dir

    net, card = load_model_dir(model_dir, "cpu")
    model = inference_model(net, card).eval()
    example = torch.zeros(2, len(card.leads), card.window_samples)
    batch = torch.export.Dim("batch", min=1, max=65536)
    # The exporter narrates its passes on stdout and warns about internals:
    # neither is actionable for a user, failures still raise.
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" registrations
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"ecg": {0: batch}},
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    onnx_log.setLevel(level)
    proto = program.model_proto
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    proto.producer_name = "mrm-edge"
    proto.doc_string = (
        f"MRM-Net inference graph ({card.name}): input '{INPUT_NAME}' float32 "
        f"[batch, {len(card.leads)}, {card.window_samples}] in {card.units} at "
        f"{card.sampling_rate} Hz; output '{OUTPUT_NAME}' float32 [batch, {len(card.labels)}]"
    )
    set_metadata(proto, card_metadata(card, model_dir, "fp32"))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))
    onnx.checker.check_model(str(out_path), full_check=True)
    return out_path
