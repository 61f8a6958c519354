"""``mrm-edge export``: a trained model directory → ONNX variants (+ TensorRT engines), each
step gated before the next, every artifact with a JSON sidecar (docs/export.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.export import gates
from mrm_edge.export.sidecar import write_sidecar

from mrm_edge.artifacts import ONNX_FILES, onnx_io, read_sidecar, trtexec_engine_filename
from mrm_edge.card import CARD_FILE, ModelCard, export_record, verify_weights
from mrm_edge.fileio import sha256_file

#: INT8 variant → the activation type its file is quantized with (mrm_edge.export.int8).
INT8_VARIANTS: dict[str, str] = {"int8": "uint8", "int8-sym": "int8"}
#: ``int8_activations`` → the INT8 variants written.
INT8_CHOICES: dict[str, tuple[str, ...]] = {
    "both": ("int8", "int8-sym"),
    "uint8": ("int8",),
    "int8": ("int8-sym",),
}


@dataclass
class ExportOptions:
    model_dir: Path
    out_dir: Path
    fp16: bool = False
    int8: bool = False
    calib_data: Path | None = None
    int8_method: str = "minmax"
    int8_activations: str = "both"  # which INT8 files: a key of INT8_CHOICES (the CLI's choice)
    int8_ops: tuple[str, ...] | None = None  # None: mrm_edge.export.int8.DEFAULT_OP_TYPES
    calib_windows: int = 512
    fp16_tolerance_pt: float = gates.FP16_AUC_TOLERANCE_PT
    int8_tolerance_pt: float = gates.INT8_AUC_TOLERANCE_PT
    engine: bool = True
    batch: tuple[int, int, int] = (1, 32, 256)
    workspace_mib: int = 2048
    dla_core: int | None = None
    trt_flavour: str | None = None  # None: $MRM_EDGE_TRT_FLAVOUR, else auto (capability.py)
    compute_targets: tuple[str, ...] | None = None  # TensorRT-RTX; None: its default targets
    timing_cache: Path | None = None


@dataclass
class ExportSummary:
    artifacts: dict[str, Path] = field(default_factory=dict)
    engines: dict[str, Path] = field(default_factory=dict)


@dataclass
class EvalWindows:
    """Windows the gates run on: labelled held-out ECG when available."""

    x: np.ndarray
    y: np.ndarray | None
    description: str


def synthetic_windows(card: ModelCard, n: int = 64, seed: int = 0) -> EvalWindows:
    from mrm_edge.data.synthetic import make_windows

    return EvalWindows(
        make_windows(card, n, seed),
        None,
        f"{n} synthetic windows (no labelled data given: AUC gates not applied)",
    )


def held_out(card: ModelCard, source: Path) -> EvalWindows:
    from mrm_edge.calibration.sources import held_out_windows

    x, y = held_out_windows(source, card)
    folds = card.data.get("folds", {}).get("test", [10])
    return EvalWindows(
        x.astype(np.float32),
        y,
        f"{len(x)} held-out windows (folds {folds}) from {Path(source).name}",
    )


@dataclass
class _Run:
    """What every gated step reads (options, card, thresholds, gate windows, the sidecar
    fields every file shares) and what it fills (the summary, the log)."""

    opts: ExportOptions
    card: ModelCard
    thresholds: np.ndarray
    windows: EvalWindows
    common: dict[str, Any]
    summary: ExportSummary
    log: Callable[[str], None]


def run_export(
    opts: ExportOptions,
    log: Callable[[str], None] = print,
    *,
    trt: Any = None,
    cudart: Any = None,
) -> ExportSummary:
    """Run the export; ``trt``/``cudart`` are for tests that inject TensorRT/CUDA doubles."""
    model_dir, out = Path(opts.model_dir), Path(opts.out_dir)
    card = ModelCard.load(model_dir)
    verify_weights(model_dir, card)  # before any work: missing, pickle, corrupt, truncated
    out.mkdir(parents=True, exist_ok=True)
    if opts.int8 and opts.calib_data is None:
        raise ValueError(
            "--int8 needs real ECG to calibrate on: pass --calib-data DIR (a PTB-XL or "
            "CPSC 2018 tree, or a folder of WFDB records)"
        )
    summary = ExportSummary()
    common = {
        "labels": card.labels,
        "model_name": card.name,
        "source_card_sha256": sha256_file(model_dir / CARD_FILE),
        # What the runtime reads of the card, as exported: a later edit is refused by name.
        "exported_card": export_record(card),
        "sampling_rate": card.sampling_rate,
        "window_samples": card.window_samples,
        "units": card.units,
    }
    thresholds = np.array([card.thresholds[lab] for lab in card.labels])
    windows = held_out(card, opts.calib_data) if opts.calib_data else synthetic_windows(card)
    log(f"gates run on {windows.description}")

    run = _Run(opts, card, thresholds, windows, common, summary, log)
    # 1. FP32, checked against PyTorch
    fp32, p32 = _fp32(run)
    # 2. FP16, checked against FP32
    if opts.fp16:
        _fp16(run, fp32, p32)
    # 3. INT8 (both files from one calibration), each gated against FP32
    if opts.int8:
        _int8(run, fp32)
    # 4. TensorRT engines, or the commands to build them on the target
    if opts.engine:
        _engines(opts, summary, log, trt, cudart)
    return summary


def _fp32(run: _Run) -> tuple[Path, np.ndarray]:
    """Write the FP32 ONNX and hold it to PyTorch; return it and its probabilities."""
    from mrm_edge.export.cost import cost_record
    from mrm_edge.export.onnx_fp32 import export_fp32

    model_dir = Path(run.opts.model_dir)
    fp32 = export_fp32(model_dir, Path(run.opts.out_dir) / ONNX_FILES["fp32"])
    ref = gates.torch_probabilities(model_dir, run.windows.x)
    p32 = gates.onnx_probabilities(fp32, run.windows.x)
    parity = gates.compare(ref, p32, run.windows.y, run.card.labels, run.thresholds)
    parity["tolerance_max_abs_prob_delta"] = gates.FP32_PARITY_TOLERANCE
    parity["reference"] = "PyTorch FP32 (CPU)"
    parity["data"] = run.windows.description
    if parity["max_abs_prob_delta"] > gates.FP32_PARITY_TOLERANCE:
        raise gates.GateFailed(
            f"{fp32}: ONNX Runtime differs from PyTorch by {parity['max_abs_prob_delta']:.2e} "
            f"(tolerance {gates.FP32_PARITY_TOLERANCE:.0e}); the export is not faithful"
        )
    # What a window costs, counted once on the FP32 graph: every later sidecar records it too.
    run.common["cost"] = cost_record(fp32)
    write_sidecar(fp32, {"precision": "fp32", **onnx_io(fp32), **run.common, "parity": parity})
    run.summary.artifacts["fp32"] = fp32
    run.log(f"wrote {fp32.name}: max |Δp| vs PyTorch {parity['max_abs_prob_delta']:.2e}")
    return fp32, p32


def _fp16(run: _Run, fp32: Path, p32: np.ndarray) -> None:
    """Write the FP16 ONNX and hold it to FP32 (macro-AUC change)."""
    from mrm_edge.export.fp16 import KEEP_FP32_OPS, convert_fp16

    fp16 = convert_fp16(fp32, Path(run.opts.out_dir) / ONNX_FILES["fp16"])
    p16 = gates.onnx_probabilities(fp16, run.windows.x)
    acc = gates.compare(p32, p16, run.windows.y, run.card.labels, run.thresholds)
    acc.update(
        reference="FP32 ONNX",
        data=run.windows.description,
        tolerance_auc_delta_pt=run.opts.fp16_tolerance_pt,
        kept_fp32_ops=list(KEEP_FP32_OPS),
    )
    _gate_auc(fp16, acc, run.opts.fp16_tolerance_pt, "FP16")
    write_sidecar(fp16, {"precision": "fp16", **onnx_io(fp16), **run.common, "accuracy": acc})
    run.summary.artifacts["fp16"] = fp16
    run.log(f"wrote {fp16.name}: {_describe(acc)}")


def _int8(run: _Run, fp32: Path) -> None:
    """Write and gate each requested INT8 file; the calibration is done once and cached
    (its key does not depend on the activation type), so the second file reuses it."""
    from mrm_edge.calibration.sources import select_calibration_windows
    from mrm_edge.export.int8.gate import Int8Options, build_int8
    from mrm_edge.export.int8.placement import DEFAULT_OP_TYPES, SCHEMES

    opts = run.opts
    out = Path(opts.out_dir)
    cset = select_calibration_windows(opts.calib_data, run.card, opts.calib_windows)
    run.log(f"calibrating INT8 ({opts.int8_method}) on {len(cset.x)} windows")
    for variant in INT8_CHOICES[opts.int8_activations]:
        activation = INT8_VARIANTS[variant]
        path = out / ONNX_FILES[variant]
        options = Int8Options(
            method=opts.int8_method,
            activation_type=activation,  # type: ignore[arg-type]
            op_types=opts.int8_ops or DEFAULT_OP_TYPES,
            max_auc_drop=opts.int8_tolerance_pt / 100.0,
            cache_dir=out / ".calibration-cache",
        )
        report = build_int8(fp32, path, cset, run.windows.x, run.windows.y, options)
        rep = report.to_dict()
        if not report.passed:
            raise gates.GateFailed(f"{path}: {report.message}")
        sidecar = {"precision": "int8", "scheme": SCHEMES[activation], **onnx_io(path)}
        write_sidecar(path, {**sidecar, **run.common, "accuracy": rep})
        run.summary.artifacts[variant] = path
        ranges = "cached" if report.result.ranges_cached else "calibrated"
        run.log(
            f"wrote {path.name}: {_describe_int8(rep)} ({SCHEMES[activation]}; ranges {ranges})"
        )


def _gate_auc(path: Path, acc: dict[str, Any], tolerance_pt: float, what: str) -> None:
    delta = acc.get("auc_delta_pt")
    if delta is not None and abs(delta) > tolerance_pt:
        raise gates.GateFailed(
            f"{path}: {what} changes macro-AUC by {delta:+.3f} pt on held-out data "
            f"(tolerance {tolerance_pt} pt)"
        )


def _describe(acc: dict[str, Any]) -> str:
    agree = 100 * acc["label_agreement"]
    text = f"max |Δp| {acc['max_abs_prob_delta']:.2e}, label agreement {agree:.2f}%"
    if acc.get("auc_delta_pt") is not None:
        text += f", macro-AUC {100 * acc['auc']:.2f} ({acc['auc_delta_pt']:+.3f} pt)"
    return text


def _describe_int8(rep: dict[str, Any]) -> str:
    text = (
        f"macro-AUC {100 * rep['auc_int8']:.2f} vs FP32 {100 * rep['auc_fp32']:.2f} "
        f"(drop {rep['auc_drop_pt']:+.3f} pt), max |Δp| {rep['max_abs_prob_delta']:.3f}"
    )
    if rep.get("excluded_nodes"):
        text += f", {len(rep['excluded_nodes'])} sensitive layer(s) kept in float"
    return text


#: Which ONNX artifact each engine precision is built from: INT8 engines take the symmetric
#: file (TensorRT's parser refuses the ONNX Runtime CPU file's int32 bias DequantizeLinear).
ENGINE_SOURCES: dict[str, str] = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-sym"}


def _engines(
    opts: ExportOptions,
    summary: ExportSummary,
    log: Callable[[str], None],
    trt: Any = None,
    cudart: Any = None,
) -> None:
    """Build (or reuse) an engine per precision; ``trt``/``cudart`` let tests inject doubles."""
    from mrm_edge.export.tensorrt.builder import build_or_load, make_key
    from mrm_edge.export.tensorrt.cache import why_build
    from mrm_edge.export.tensorrt.plan import BuildOptions
    from mrm_edge.runtime.backends.tensorrt.capability import (
        choose_flavour,
        flavour_of,
        probe_flavours,
        probe_gpu,
        requested_flavour,
    )

    wanted = [p for p, src in ENGINE_SOURCES.items() if src in summary.artifacts]
    if "int8" in summary.artifacts and "int8" not in wanted:
        log("no INT8 engine: the TensorRT-style INT8 ONNX (model.int8-sym.onnx) was not written")
    infos = probe_flavours({flavour_of(trt): trt} if trt is not None else None)
    gpu, gpu_reason = probe_gpu(cudart=cudart)
    flavour, why_flavour = choose_flavour(requested_flavour(opts.trt_flavour), infos, gpu)
    builds = {
        p: BuildOptions(
            precision=p,
            profile=opts.batch,
            workspace_bytes=opts.workspace_mib << 20,
            timing_cache=opts.timing_cache or Path(opts.out_dir) / "timing.cache",
            dla_core=opts.dla_core,
            compute_targets=opts.compute_targets,
        )
        for p in wanted
    }
    if flavour is None:
        reason = why_flavour if gpu is not None else f"{why_flavour}; GPU: {gpu_reason}"
        log(_no_engine_message(opts, summary, wanted, builds, reason))
        return
    info = infos[flavour]
    log(f"engines: {info.summary()} ({why_flavour})")
    for p in wanted:
        onnx_path = summary.artifacts[ENGINE_SOURCES[p]]
        # Why it must be (re)built: nothing cached yet, or what the engines there were built for.
        why = why_build(Path(opts.out_dir), make_key(onnx_path, builds[p], gpu, info))
        path, built = build_or_load(onnx_path, Path(opts.out_dir), builds[p], gpu, info, trt=trt)
        summary.engines[p] = path
        log(_describe_engine(path, why) if built else f"reused cached engine {path.name}")


def _no_engine_message(
    opts: ExportOptions,
    summary: ExportSummary,
    wanted: list[str],
    builds: dict[str, Any],
    reason: str,
) -> str:
    from mrm_edge.export.tensorrt.trtexec import trtexec_command

    lines = [
        f"TensorRT engines not built here ({reason}). The ONNX files are written; on the "
        "target (Jetson / RTX with TensorRT), or anywhere with `pip install "
        "'mrm-edge[tensorrt-rtx]'` for RTX GPUs, run:",
        "  "
        + " ".join(
            ["mrm-edge export --model", str(opts.model_dir)]
            + [f"--{p}" for p in wanted if p != "fp32"]
            + ([f"--calib-data {opts.calib_data}"] if opts.int8 else [])
            + [f"--batch {','.join(map(str, opts.batch))} --engine --out {opts.out_dir}"]
        ),
        "or the equivalent trtexec line(s):",
    ]
    for p in wanted:
        onnx_path = summary.artifacts[ENGINE_SOURCES[p]]
        engine = Path(opts.out_dir) / trtexec_engine_filename(p)
        lines.append("  " + trtexec_command(onnx_path, engine, builds[p]))
    return "\n".join(lines)


def _describe_engine(path: Path, why: str) -> str:
    """``built engine NAME (why): 29.2 MB, 379 layers, 1.0 s, TensorRT-RTX 1.7 for ...``."""
    side = read_sidecar(path)
    build, key = side.get("build", {}), side.get("key", {})
    targets = build.get("compute_targets")
    made = f"{'TensorRT-RTX' if key.get('flavour') == 'tensorrt-rtx' else 'TensorRT'} "
    made += str(key.get("trt_version"))
    made += f" for compute {','.join(targets)}" if targets else f" on {key.get('gpu_name')}"
    return (
        f"built engine {path.name} ({why}): {side['engine_bytes'] / 1e6:.1f} MB, "
        f"{build.get('layers')} layers, {build.get('build_seconds')} s, {made}"
    )
