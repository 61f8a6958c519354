"""Every test double of the suite, and the small real artifacts the tests feed them
(here: hand-built ONNX graphs and a tiny exported MRM-Net; the ONNX graphs are real, ONNX
Runtime runs them).

=====================  ==================================================================
module                 doubles
=====================  ==================================================================
``backends``           StubBackend (no model), SlowBackend / FailingBackend (wrap a real
                       backend to be slow or to fail on chosen calls)
``constant_backend``   the trivial backend: one module plus one registration
``sources``            ScriptedSource (a fixed event list), StartSignallingSource
``ticks_source``       the trivial source: one module plus one registration
``sinks``              StopAfter, SlowSink, StreamCountingSink
``counting_sink``      the trivial sink: one module plus one registration
``clock``              FakeClock
``tensorrt``           FakeTensorRT, FakeCudaRuntime, ExplodingCudaRuntime
``pycuda``             FakePyCudaDriver
``machine``            machine(): this machine's facts with the stated ones replaced
=====================  ==================================================================
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
LABELS = ["CD", "HYP", "MI", "NORM", "STTC"]


def make_onnx(
    path: Path,
    *,
    input_name: str = "ecg",
    dims: tuple[int, int] = (12, 1000),
    n_out: int = 5,
    batch: int | None = None,
    fp16: bool = False,
    qdq: bool = False,
    seed: int = 0,
) -> Path:
    """A small real graph: mean over time → MatMul → Sigmoid, ``[batch, *dims]`` →
    ``probabilities [batch, n_out]``. ``fp16`` adds FP16 casts (a mixed-precision graph),
    ``qdq`` adds a QuantizeLinear/DequantizeLinear pair (an explicitly quantized graph),
    ``batch`` fixes the batch dimension (default dynamic)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(dims[0], n_out)).astype(np.float16 if fp16 else np.float32)
    nodes = [helper.make_node("ReduceMean", [input_name], ["m"], axes=[2], keepdims=0)]
    inits = [numpy_helper.from_array(w, "W")]
    x = "m"
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(0.02, np.float32), "scale"),
            numpy_helper.from_array(np.array(0, np.int8), "zero"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", [x, "scale", "zero"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
        ]
        x = "dq"
    if fp16:
        nodes.append(helper.make_node("Cast", [x], ["h"], to=TensorProto.FLOAT16))
        x = "h"
    nodes.append(helper.make_node("MatMul", [x, "W"], ["z"]))
    z = "z"
    if fp16:
        nodes.append(helper.make_node("Cast", ["z"], ["z32"], to=TensorProto.FLOAT))
        z = "z32"
    nodes.append(helper.make_node("Sigmoid", [z], ["probabilities"]))
    b = batch if batch is not None else "batch"
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [b, *dims])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [b, n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_card(
    model_dir: Path, *, labels: list[str] = LABELS, fs: int = 100, window: int = 1000
) -> None:
    """A valid ``card.json`` (the fields the runtime reads; the rest plausible)."""
    from mrm_edge.card import ModelCard

    ModelCard(
        name="tiny-test-model",
        task="superdiagnostic",
        labels=list(labels),
        sampling_rate=fs,
        window_samples=window,
        leads=LEADS,
        units="mV",
        normalization={"mean": [0.0] * 12, "std": [1.0] * 12, "leads": LEADS},
        preset="small",
        architecture={"width": 16},
        head_fusion="mean",
        thresholds={lab: 0.5 for lab in labels},
        threshold_method="fixed 0.5 (test)",
        metrics={},
        data={"dataset": "none (test)"},
        training={},
        code_version={},
    ).save(model_dir)


def card_stamp(model_dir: Path) -> dict:
    """What ``mrm-edge export`` records of ``model_dir``'s card in each sidecar (the whole
    card's SHA-256 and the per-field record): a sidecar written with it vouches for the card."""
    from mrm_edge.card import CARD_FILE, ModelCard, export_record
    from mrm_edge.fileio import sha256_file

    return {
        "source_card_sha256": sha256_file(Path(model_dir) / CARD_FILE),
        "exported_card": export_record(ModelCard.load(model_dir)),
    }


def stamp_sidecars(model_dir: Path) -> None:
    """Record ``model_dir``'s card as it is now in every ONNX sidecar there (for fixtures
    that write weights or edit the card after writing the sidecars, as if exported after)."""
    import json

    for sidecar in Path(model_dir).glob("*.onnx.json"):
        doc = json.loads(sidecar.read_text())
        doc.update(card_stamp(model_dir))
        sidecar.write_text(json.dumps(doc))


_TINY_MRMNET: dict[str, Path] = {}


def tiny_mrmnet_dir(root: Path) -> Path:
    """A model directory with ``card.json`` and a real exported MRM-Net ``model.onnx``
    (width 16, random weights, standardisation baked in), plus ``reference.npz`` holding
    torch's own probabilities for fixed inputs (batches 1, 7, 64). Exported once per test
    process (torch is imported here, in test code only)."""
    if "dir" in _TINY_MRMNET and _TINY_MRMNET["dir"].is_dir():
        return _TINY_MRMNET["dir"]
    import contextlib
    import io
    import warnings

    import torch

    from mrm_edge.model import InferenceModel, MRMNet, MRMNetConfig

    out = Path(root) / "tiny-mrmnet"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = MRMNet(MRMNetConfig(n_labels=5, width=16, stem_channels=(8, 8, 16, 16))).eval()
    model = InferenceModel(net, torch.full((12,), 0.01), torch.full((12,), 0.3)).eval()
    example = torch.zeros(2, 12, 1000)
    # The dynamo exporter, as export/onnx_fp32.py uses: the TorchScript one (dynamo=False)
    # cannot trace ChannelLayerNorm's x.shape[1] with a dynamic batch axis.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=["ecg"],
            output_names=["probabilities"],
            dynamic_shapes={"ecg": {0: torch.export.Dim("batch", min=1, max=65536)}},
            opset_version=18,
            optimize=True,
        )
    program.save(str(out / "model.onnx"))
    rng = np.random.default_rng(1)
    ref: dict[str, np.ndarray] = {}
    for b in (1, 7, 64):
        x = (rng.normal(size=(b, 12, 1000)) * 0.3).astype(np.float32)
        with torch.no_grad():
            ref[f"x{b}"], ref[f"p{b}"] = x, model(torch.from_numpy(x)).numpy()
    np.savez(out / "reference.npz", **ref)
    write_card(out)
    _TINY_MRMNET["dir"] = out
    return out


__all__ = [
    "LABELS",
    "LEADS",
    "card_stamp",
    "make_onnx",
    "stamp_sidecars",
    "tiny_mrmnet_dir",
    "write_card",
]
