"""Bad model directories through every entry point: one clear line, never a traceback, never
a silent wrong answer (issue 6).

Every bad directory is built in ``tmp_path`` by copying the shipped model
(``models/mrm-net-ptbxl-superdiagnostic``, read-only: copied, never touched) and then
damaging one file: the weights, the card, an ONNX variant or its sidecar. Each goes through

* the runtime API: ``DeployedModel.load``, ``select_backend`` / ``activate_backend``, and
  ``mrm_edge.checkpoint.load_model_dir`` (what ``eval``, ``export`` and the PyTorch backend use);
* the CLI in process (``CliRunner``: ``predict``, ``monitor``, ``eval``, ``export``), and a
  few cases through the real ``mrm-edge`` executable, whose stderr must hold exactly one
  ``Error:`` line and no traceback.

TensorRT cannot exist here: engines for another GPU / TensorRT / ONNX are built with the
test doubles FakeTensorRT / FakeCudaRuntime (tests/fakes/tensorrt.py) on small real ONNX
graphs, as the other engine tests do; no CLI case reaches them (the CLI cannot be handed a
double). Pickle checkpoints carry a payload that creates a marker file when unpickled: the
marker must never appear.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mrm_edge.export.sidecar import write_sidecar
from mrm_edge.runtime.backends import BackendUnavailable, OnnxRuntimeBackend, TensorRTBackend
from mrm_edge.runtime.facts import probe_machine
from mrm_edge.runtime.model import DeployedModel, ModelLoadError
from mrm_edge.runtime.selection import activate_backend, select_backend

from mrm_edge.artifacts import onnx_io
from mrm_edge.card import ModelCardError
from mrm_edge.cli import main
from tests.fakes import make_onnx, stamp_sidecars

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "mrm-net-ptbxl-superdiagnostic"
EXE = str(Path(sys.executable).parent / "mrm-edge")
ONNX = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
WEIGHTS = "model.safetensors"
SHIPPED_SHA = json.loads((SHIPPED / "card.json").read_text())["weights"]["sha256"]


# =========================================================================== helpers


def copy_model(dst: Path, *, weights: bool = True, onnx: tuple[str, ...] = ()) -> Path:
    """A copy of the shipped model's card, weights (optional) and ONNX variants + sidecars."""
    dst.mkdir(parents=True)
    shutil.copy(SHIPPED / "card.json", dst)
    if weights:
        shutil.copy(SHIPPED / WEIGHTS, dst)
    for p in onnx:
        shutil.copy(SHIPPED / ONNX[p], dst)
        shutil.copy(SHIPPED / (ONNX[p] + ".json"), dst)
    return dst


def rewrite(path: Path, data: bytes) -> None:
    # Unlink first: a damaged copy must never write through to what it was copied from.
    path.unlink()
    path.write_bytes(data)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    rewrite(path, data[: len(data) // 2])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    rewrite(path, bytes(data))


def edit_card(d: Path, change: Callable[[dict], object]) -> None:
    card = json.loads((d / "card.json").read_text())
    change(card)
    (d / "card.json").write_text(json.dumps(card))


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def cli_error(args: list[str], *needles: str) -> str:
    """Run the CLI in process; assert one ``Error:`` line (no uncaught exception) holding
    every needle, and return it."""
    r = CliRunner().invoke(main, args)
    assert r.exit_code in (1, 2), r.output
    # An uncaught exception would be r.exception itself (a traceback for a user).
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    assert "Traceback" not in r.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def exe_error(args: list[str], *needles: str) -> str:
    """The same through the real ``mrm-edge`` executable."""
    r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode in (1, 2), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def predict_ok(model: Path) -> str:
    """``mrm-edge predict`` on one synthetic patient must succeed; its stderr (backend line)."""
    r = cli("predict", "--model", str(model), "--patients", "1", "--seconds", "10")
    assert r.exit_code == 0, r.output
    assert "synthetic-0" in r.stdout
    return r.stderr


# =========================================================================== weights


def _weights_damage(d: Path, how: str) -> None:
    w = d / WEIGHTS
    if how == "missing":
        w.unlink()
    elif how == "truncated":
        truncate(w)
    elif how == "flipped":
        flip_byte(w)
    elif how == "truncated, no checksum in the card":
        truncate(w)
        edit_card(d, lambda c: c["weights"].pop("sha256"))
        stamp_sidecars(d)  # a card exported so (an edit after export is refused: elsewhere)


WEIGHT_CASES = {
    "missing": "weights file missing",
    "truncated": f"SHA-256 does not match the card's 'weights.sha256' (expected {SHIPPED_SHA[:12]}",
    "flipped": f"SHA-256 does not match the card's 'weights.sha256' (expected {SHIPPED_SHA[:12]}",
    "truncated, no checksum in the card": "not a complete safetensors file",
}


@pytest.mark.parametrize("how", list(WEIGHT_CASES))
def test_bad_weights_are_refused_where_weights_are_needed(tmp_path: Path, how: str) -> None:
    from mrm_edge.checkpoint import load_model_dir

    d = copy_model(tmp_path / "m")
    _weights_damage(d, how)
    with pytest.raises(ModelCardError) as e:
        load_model_dir(d)
    msg = str(e.value)
    assert str(d / WEIGHTS) in msg and WEIGHT_CASES[how] in msg and "\n" not in msg
    if how in ("truncated", "flipped"):
        # The checksum actually found is named too, so a reader can compare.
        from mrm_edge.fileio import sha256_file

        assert f"found {sha256_file(d / WEIGHTS)[:12]}" in msg
    # eval and export need the weights: one line naming the file, before any other work.
    cli_error(["eval", "--model", str(d), "--data", str(tmp_path)], WEIGHTS, WEIGHT_CASES[how])
    cli_error(
        ["export", "--model", str(d), "--out", str(tmp_path / "out"), "--no-engine"],
        WEIGHTS,
        WEIGHT_CASES[how],
    )
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.mark.parametrize("how", list(WEIGHT_CASES))
def test_edge_commands_run_the_intact_onnx_and_say_the_weights_were_refused(
    tmp_path: Path, how: str
) -> None:
    """predict / monitor never read the weights when an intact ONNX is there: they run it,
    and a corrupt weights file is listed as refused (the PyTorch backend is then out)."""
    d = copy_model(tmp_path / "m", onnx=("int8",))
    _weights_damage(d, how)
    m = DeployedModel.load(d)
    assert m.weights is None and set(m.onnx) == {"int8"}
    if how != "missing":
        assert WEIGHT_CASES[how] in m.refused[WEIGHTS]
    with pytest.raises(BackendUnavailable, match="torch: PyTorch: no weights"):
        select_backend(m, "torch")
    err = predict_ok(d)
    assert "backend: onnxruntime CPU int8 (model.int8.onnx)" in err
    if how != "missing":
        assert f"refused {WEIGHTS}: " in err and WEIGHT_CASES[how] in err


def test_corrupt_weights_through_the_real_executable(tmp_path: Path) -> None:
    d = copy_model(tmp_path / "m")
    flip_byte(d / WEIGHTS)
    exe_error(["eval", "--model", str(d), "--data", str(tmp_path)], WEIGHTS, SHIPPED_SHA[:12])


# =========================================================================== card


CARD_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda d: (d / "card.json").unlink(), "no model card"),
    "not JSON": (lambda d: (d / "card.json").write_text('{"name": '), "not readable JSON"),
    "JSON list": (lambda d: (d / "card.json").write_text("[1, 2]"), "expected a JSON object"),
    "no labels": (
        lambda d: edit_card(d, lambda c: c.pop("labels")),
        "missing field(s) labels",
    ),
    "no sampling_rate": (
        lambda d: edit_card(d, lambda c: c.pop("sampling_rate")),
        "missing field(s) sampling_rate",
    ),
    "labels a string": (
        lambda d: edit_card(d, lambda c: c.update(labels="CD,HYP,MI,NORM,STTC")),
        "field 'labels' must be a non-empty list of distinct names, found 'CD,HYP",
    ),
    "rate negative": (
        lambda d: edit_card(d, lambda c: c.update(sampling_rate=-100)),
        "field 'sampling_rate' must be a positive integer, found -100",
    ),
    "rate a string": (
        lambda d: edit_card(d, lambda c: c.update(sampling_rate="100")),
        "field 'sampling_rate' must be a positive integer, found '100'",
    ),
    "thresholds one short": (
        lambda d: edit_card(d, lambda c: c["thresholds"].pop("STTC")),
        "4 thresholds for 5 labels; missing ['STTC']",
    ),
    "threshold not a probability": (
        lambda d: edit_card(d, lambda c: c["thresholds"].update(MI=1.5)),
        "field 'thresholds.MI' must be a probability in [0, 1], found 1.5",
    ),
    "normalization short": (
        lambda d: edit_card(d, lambda c: c["normalization"].update(mean=[0.0] * 8)),
        "field 'normalization.mean' must be a list of 12 numbers",
    ),
}


@pytest.mark.parametrize("case", list(CARD_CASES))
def test_bad_cards_are_one_line_errors_everywhere(tmp_path: Path, case: str) -> None:
    from mrm_edge.checkpoint import load_model_dir

    damage, needle = CARD_CASES[case]
    d = copy_model(tmp_path / "m", weights=False)
    damage(d)
    card = str(d / "card.json")
    with pytest.raises(ModelLoadError) as e:
        DeployedModel.load(d)
    assert card in str(e.value) and needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelCardError, match=None) as e2:
        load_model_dir(d)
    assert needle in str(e2.value)
    cli_error(["predict", "--model", str(d)], card, needle)
    cli_error(["monitor", "--model", str(d), "--no-ui", "--duration", "1"], card, needle)
    cli_error(["eval", "--model", str(d), "--data", str(tmp_path)], card, needle)
    cli_error(["export", "--model", str(d), "--out", str(tmp_path / "o"), "--no-engine"], needle)


def test_bad_card_through_the_real_executable(tmp_path: Path) -> None:
    d = copy_model(tmp_path / "m", weights=False, onnx=("int8",))
    edit_card(d, lambda c: c.update(sampling_rate=-100))
    exe_error(["predict", "--model", str(d)], "card.json", "'sampling_rate'", "-100")


# =========================================================================== ONNX variants


def _replace_onnx(d: Path, precision: str, *, dims=(12, 1000), n_out=5, io: bool = True) -> None:
    """Replace a variant by a real graph of another shape, with an honest sidecar (its own
    SHA-256; its I/O recorded as export records it, or not at all)."""
    path = d / ONNX[precision]
    path.unlink()
    make_onnx(path, dims=dims, n_out=n_out, fp16=precision == "fp16", qdq=precision == "int8")
    info = {"precision": precision, "labels": ["CD", "HYP", "MI", "NORM", "STTC"]}
    if io:
        info.update(onnx_io(path))
    write_sidecar(path, info)


def _other(precision: str) -> str:
    return "fp32" if precision != "fp32" else "int8"


ONNX_DAMAGE: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "file missing": (
        lambda d, p: (d / ONNX[p]).unlink(),
        "file missing (named by {name}.json)",
    ),
    "truncated": (lambda d, p: truncate(d / ONNX[p]), "SHA-256 does not match its sidecar's"),
    "byte flipped": (lambda d, p: flip_byte(d / ONNX[p]), "SHA-256 does not match its sidecar's"),
    "sidecar missing": (
        lambda d, p: Path(str(d / ONNX[p]) + ".json").unlink(),
        "sidecar missing (expected beside {name})",
    ),
    "sidecar of another ONNX": (
        lambda d, p: shutil.copy(d / (ONNX[_other(p)] + ".json"), d / (ONNX[p] + ".json")),
        "describes '{other}', not {name}",
    ),
    "8 leads": (
        lambda d, p: _replace_onnx(d, p, dims=(8, 1000)),
        "input 'ecg' has shape ['batch', 8, 1000], the card needs [batch, 12, 1000] (12 leads)",
    ),
    "8 leads, sidecar without I/O": (
        lambda d, p: _replace_onnx(d, p, dims=(8, 1000), io=False),
        "input 'ecg' has shape ['batch', 8, 1000], the card needs [batch, 12, 1000] (12 leads)",
    ),
    "4 outputs for 5 labels": (
        lambda d, p: _replace_onnx(d, p, n_out=4),
        "output 'probabilities' has shape ['batch', 4], the card needs [batch, 5] "
        "(5 labels: CD, HYP, MI, NORM, STTC)",
    ),
}
# ONNX Runtime CPU order (runtime/selection.py): INT8 > FP32 > FP16.
CPU_ORDER = ("int8", "fp32", "fp16")


@pytest.mark.parametrize("precision", list(ONNX))
@pytest.mark.parametrize("damage", list(ONNX_DAMAGE))
def test_a_bad_onnx_variant_is_refused_and_auto_takes_the_next(
    tmp_path: Path, damage: str, precision: str
) -> None:
    d = copy_model(tmp_path / "m", weights=False, onnx=tuple(ONNX))
    do, reason = ONNX_DAMAGE[damage]
    do(d, precision)
    reason = reason.format(name=ONNX[precision], other=ONNX[_other(precision)])
    m = DeployedModel.load(d)
    name = ONNX[precision]
    assert reason in m.refused[name] and "\n" not in m.refused[name]
    assert set(m.onnx) == set(ONNX) - {precision}
    # auto: the next intact variant in ONNX Runtime CPU order, never the refused one.
    backend, why = select_backend(m)
    expected = next(p for p in CPU_ORDER if p != precision)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.precision == expected
    if precision == "int8":  # the preferred variant was passed over: the line says why
        assert "model.int8.onnx refused (" in why and reason in why
    # Asking for exactly that variant: refused with the file and the reason, one line.
    with pytest.raises(BackendUnavailable) as e:
        select_backend(m, "onnxruntime", precision)
    assert name in str(e.value) and reason in str(e.value) and "\n" not in str(e.value)


def test_predict_and_monitor_fall_back_and_say_which_was_refused(tmp_path: Path) -> None:
    d = copy_model(tmp_path / "m", weights=False, onnx=("fp32", "int8"))
    truncate(d / "model.int8.onnx")
    err = predict_ok(d)
    assert "backend: onnxruntime CPU fp32 (model.onnx)" in err
    assert "model.int8.onnx refused" in err and "SHA-256 does not match" in err
    # The preferred INT8 intact, FP32 broken: INT8 runs; the refusal is still printed.
    d2 = copy_model(tmp_path / "m2", weights=False, onnx=("fp32", "int8"))
    flip_byte(d2 / "model.onnx")
    r = cli(
        "monitor", "--model", str(d2), "--streams", "1", "--speed", "max",
        "--duration", "2", "--no-ui",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "onnxruntime CPU int8" in r.stderr
    assert "refused model.onnx:" in r.stderr and "SHA-256 does not match" in r.stderr
    # Explicitly asking for the broken one: one line with the reason.
    cli_error(
        ["monitor", "--model", str(d2), "--backend", "onnxruntime", "--precision", "fp32"],
        "onnxruntime fp32",
        "model.onnx",
        "SHA-256 does not match",
    )


def test_no_intact_variant_is_one_line_naming_each(tmp_path: Path) -> None:
    d = copy_model(tmp_path / "m", weights=False, onnx=tuple(ONNX))
    truncate(d / "model.onnx")
    (d / "model.int8.onnx").unlink()
    _replace_onnx(d, "fp16", dims=(8, 1000))
    with pytest.raises(ModelLoadError) as e:
        DeployedModel.load(d)
    msg = str(e.value)
    assert "nothing runnable" in msg and "\n" not in msg
    for name in ONNX.values():
        assert name in msg
    needles = ("nothing runnable", "model.onnx", "model.int8.onnx", "model.fp16.onnx", "8, 1000]")
    cli_error(["predict", "--model", str(d)], *needles)
    cli_error(["monitor", "--model", str(d), "--no-ui", "--duration", "1"], *needles)
    exe_error(["monitor", "--model", str(d), "--no-ui", "--duration", "1"], *needles)


def test_no_intact_onnx_but_intact_weights_falls_to_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    d = copy_model(tmp_path / "m", onnx=("fp32",))
    flip_byte(d / "model.onnx")
    backend, why = select_backend(DeployedModel.load(d))
    assert backend.name == "torch"
    assert "ONNX Runtime: no verified ONNX model (model.onnx:" in why and "SHA-256" in why


# =========================================================================== TensorRT engines


def _engine_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A model directory (small real ONNX graphs) with an FP16 engine built by the test
    double on its default fake GPU ('Fake GPU (test double)', compute 9.0, TensorRT 10.3.0)."""
    from mrm_edge.export.tensorrt.builder import build_or_load
    from mrm_edge.export.tensorrt.plan import BuildOptions
    from mrm_edge.runtime.backends.tensorrt.capability import probe_gpu, probe_tensorrt

    from tests.fakes.tensorrt import FakeCudaRuntime, FakeTensorRT
    from tests.runtime.test_model import make_model_dir

    d = make_model_dir(tmp_path / "m", precisions=("fp32", "fp16", "int8"))
    cudart = FakeCudaRuntime()
    trt = FakeTensorRT("10.3.0", cuda=cudart)
    gpu, _ = probe_gpu(0, cudart)
    engine, built = build_or_load(
        d / "model.fp16.onnx", d, BuildOptions("fp16", (1, 8, 16)), gpu, probe_tensorrt(trt), trt
    )
    assert built
    return d, engine


def _machine(kind: str):
    from tests.fakes.tensorrt import FakeCudaRuntime, FakeDeviceProp, FakeTensorRT

    props = {
        "another GPU": FakeDeviceProp(b"NVIDIA A100-SXM4-40GB", 8, 0),
        "another compute capability": FakeDeviceProp(b"Fake GPU (test double)", 8, 6),
        "another TensorRT": FakeDeviceProp(),
        "the same machine": FakeDeviceProp(),
    }[kind]
    cudart = FakeCudaRuntime([props])
    version = "10.4.0" if kind == "another TensorRT" else "10.3.0"
    return FakeTensorRT(version, cuda=cudart), cudart


MISFITS = {
    "another GPU": "but this machine has NVIDIA A100-SXM4-40GB (compute 8.0) with TensorRT 10.3.0",
    "another compute capability": (
        "but this machine has Fake GPU (test double) (compute 8.6) with TensorRT 10.3.0"
    ),
    "another TensorRT": (
        "but this machine has Fake GPU (test double) (compute 9.0) with TensorRT 10.4.0"
    ),
}


@pytest.mark.parametrize("kind", list(MISFITS))
def test_engine_for_another_machine_is_refused_at_runtime(tmp_path: Path, kind: str) -> None:
    d, engine = _engine_dir(tmp_path)
    m = DeployedModel.load(d)
    assert [a.name for a in m.engines] == [engine.name]  # verified bytes: fit is checked later
    trt, cudart = _machine(kind)
    built = "built for Fake GPU (test double) (compute 9.0) with TensorRT 10.3.0"
    # auto: passed over with the reason, the next backend chosen.
    backend, why = select_backend(m, facts=probe_machine(trt, cudart))
    assert isinstance(backend, OnnxRuntimeBackend)
    assert f"{engine.name} {built}, {MISFITS[kind]}" in why
    # Explicitly asked for: refused with the same reason, one line.
    with pytest.raises(BackendUnavailable) as e:
        select_backend(m, "tensorrt", facts=probe_machine(trt, cudart))
    assert MISFITS[kind] in str(e.value) and "mrm-edge export --engine" in str(e.value)
    # The backend itself refuses it too (a BackendUnavailable, so auto can move on).
    with pytest.raises(BackendUnavailable) as e2:
        TensorRTBackend(engine, trt=trt, cudart=cudart).activate()
    assert built in str(e2.value) and MISFITS[kind] in str(e2.value)


def test_engine_from_another_onnx_is_refused_as_stale(tmp_path: Path) -> None:
    d, engine = _engine_dir(tmp_path)
    make_onnx(d / "model.fp16.onnx", fp16=True, seed=7)  # the ONNX was re-exported since
    write_sidecar(d / "model.fp16.onnx", {"precision": "fp16"})
    m = DeployedModel.load(d)
    assert m.engines == [] and "stale engine" in m.refused[engine.name]
    trt, cudart = _machine("the same machine")
    backend, _ = select_backend(m, facts=probe_machine(trt, cudart))
    assert isinstance(backend, OnnxRuntimeBackend)


def test_engine_damaged_after_loading_fails_to_start_and_auto_moves_on(tmp_path: Path) -> None:
    d, engine = _engine_dir(tmp_path)
    m = DeployedModel.load(d)
    rewrite(engine, engine.read_bytes()[:-1])  # after the directory was verified
    trt, cudart = _machine("the same machine")
    backend, why, _ = activate_backend(m, facts=probe_machine(trt, cudart))
    try:
        assert isinstance(backend, OnnxRuntimeBackend) and backend.is_active
        assert f"tensorrt fp16 ({engine.name})" in why and "failed to start" in why
        assert "SHA-256 differs from its sidecar's" in why
    finally:
        backend.deactivate()


def test_export_rebuilds_an_engine_for_another_machine_and_says_why(tmp_path: Path) -> None:
    from mrm_edge.export.pipeline import ExportOptions, ExportSummary, _engines

    d, first = _engine_dir(tmp_path)
    opts = ExportOptions(model_dir=d, out_dir=d, batch=(1, 8, 16))

    def export_on(kind: str) -> tuple[Path, list[str]]:
        logs: list[str] = []
        summary = ExportSummary(artifacts={"fp16": d / "model.fp16.onnx"})
        trt, cudart = _machine(kind)
        _engines(opts, summary, logs.append, trt, cudart)
        # First the flavour line (which TensorRT builds, and why), then one line per engine.
        assert logs[0].startswith("engines: TensorRT 1")
        return summary.engines["fp16"], logs[1:]

    again, logs = export_on("the same machine")
    assert again == first and logs == [f"reused cached engine {first.name}"]
    newer, logs = export_on("another TensorRT")
    assert newer != first and logs[0].startswith(f"built engine {newer.name} (")
    assert f"{first.name} differs in trt_version '10.3.0' (here '10.4.0')" in logs[0]
    a100, logs = export_on("another GPU")
    assert "gpu_name 'Fake GPU (test double)' (here 'NVIDIA A100-SXM4-40GB')" in logs[0]
    assert "compute_capability '9.0' (here '8.0')" in logs[0]
    # Each machine now finds its own engine; the old ones stay for the machines they fit.
    trt, cudart = _machine("another GPU")
    backend, why = select_backend(DeployedModel.load(d), facts=probe_machine(trt, cudart))
    assert isinstance(backend, TensorRTBackend) and backend.engine_path == a100
    assert why.startswith(f"tensorrt fp16 ({a100.name})")
    # A re-exported ONNX: rebuilt, saying the ONNX changed.
    make_onnx(d / "model.fp16.onnx", fp16=True, seed=7)
    write_sidecar(d / "model.fp16.onnx", {"precision": "fp16"})
    _, logs = export_on("the same machine")
    assert logs[0].startswith("built engine") and f"{first.name} differs in onnx_sha256" in logs[0]


# =========================================================================== pickle


class Payload:
    """Unpickling this creates ``marker``: proof that a file was (or was not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_pickle(path: Path, marker: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({"model": {"w": torch.zeros(3)}, "payload": Payload(marker)}, path)
    return path


def test_the_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """Without this, 'the marker was not created' would prove nothing."""
    import torch

    marker = tmp_path / "ran"
    write_pickle(tmp_path / "model.pt", marker)
    torch.load(tmp_path / "model.pt", weights_only=False)  # the unsafe load, on purpose
    assert marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
def test_a_directory_with_only_a_pickle_is_refused_unread(tmp_path: Path, suffix: str) -> None:
    from mrm_edge.checkpoint import load_model_dir

    marker = tmp_path / "ran"
    d = tmp_path / "m"
    d.mkdir()
    name = "model" + suffix
    write_pickle(d / name, marker)
    needles = (name, "pickle checkpoints are never loaded")
    with pytest.raises(ModelLoadError) as e:
        DeployedModel.load(d)
    assert all(n in str(e.value) for n in needles)
    with pytest.raises(ModelCardError):
        load_model_dir(d)
    for command in (["predict"], ["monitor", "--no-ui"], ["eval", "--data", str(tmp_path)]):
        cli_error([*command, "--model", str(d)], *needles)
    cli_error(["export", "--model", str(d), "--out", str(tmp_path / "o")], *needles)
    # With a card: the weights are missing and the pickle beside them is named, not read.
    shutil.copy(SHIPPED / "card.json", d)
    with pytest.raises(ModelCardError) as e2:
        load_model_dir(d)
    assert "weights file missing" in str(e2.value) and needles[1] in str(e2.value)
    with pytest.raises(ModelLoadError) as e3:
        DeployedModel.load(d)
    assert f"{name}: a pickle checkpoint, never loaded" in str(e3.value)
    cli_error(["eval", "--model", str(d), "--data", str(tmp_path)], *needles)
    assert not marker.exists()


def test_a_pickle_under_the_weights_name_is_refused_unread(tmp_path: Path) -> None:
    from mrm_edge.checkpoint import load_model_dir

    marker = tmp_path / "ran"
    d = copy_model(tmp_path / "m", weights=False, onnx=("int8",))
    write_pickle(d / WEIGHTS, marker)
    with pytest.raises(ModelCardError, match=r"a pickle / torch\.save file, not safetensors"):
        load_model_dir(d)
    cli_error(["eval", "--model", str(d), "--data", str(tmp_path)], "not safetensors")
    m = DeployedModel.load(d)  # the ONNX still runs; the weights are refused
    assert m.weights is None and "not safetensors" in m.refused[WEIGHTS]
    # A card that names a pickle as its weights is refused outright.
    edit_card(d, lambda c: c["weights"].update(file="model.pt"))
    cli_error(["predict", "--model", str(d)], "'weights.file'", ".safetensors")
    assert not marker.exists()


def test_predict_on_a_pickle_only_directory_through_the_real_executable(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    d = tmp_path / "m"
    d.mkdir()
    write_pickle(d / "model.pt", marker)
    exe_error(["predict", "--model", str(d)], "model.pt", "never loaded")
    assert not marker.exists()


def test_training_never_resumes_from_a_pickle(ptbxl_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    out = tmp_path / "run"
    out.mkdir()
    write_pickle(out / "checkpoint.pt", marker)
    args = ["train", "--data", str(ptbxl_root), "--out", str(out), "--epochs", "1"]
    exe_error(args, "checkpoint.pt", "safetensors-only", "not loaded")
    assert not marker.exists()


# =========================================================================== static: no pickle

SOURCE_DIRS = ("mrm_edge", "export", "runtime", "calibration")
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}


def _unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for mod in mods:
                if mod and mod.split(".")[0] in UNPICKLERS:
                    found.append((node.lineno, f"import {mod}"))
            is_torch = isinstance(node, ast.ImportFrom) and node.module == "torch"
            if is_torch and any(a.name == "load" for a in node.names):
                found.append((node.lineno, "from torch import load"))
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else ast.unparse(owner)
        call = f"{owner_name}.{node.func.attr}"
        if call in ("torch.load", "torch.serialization.load") or (
            owner_name in UNPICKLERS and node.func.attr in ("load", "loads", "Unpickler")
        ):
            found.append((node.lineno, call))
        if node.func.attr == "load" and owner_name in ("np", "numpy"):
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    found.append((node.lineno, f"{call}(allow_pickle=...)"))
    return found


def test_the_detector_finds_what_it_looks_for() -> None:
    code = (
        "import pickle\nimport torch\nimport numpy as np\n"
        "torch.load('a')\npickle.loads(b'')\nnp.load('x', allow_pickle=True)\nnp.load('y')\n"
    )
    found = [what for _, what in _unsafe_calls(ast.parse(code))]
    assert found == ["import pickle", "torch.load", "pickle.loads", "np.load(allow_pickle=...)"]


def test_no_source_module_can_unpickle() -> None:
    files = [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 40  # the scan really covers the packages
    offenders = [
        f"{f.relative_to(REPO)}:{line}: {what}"
        for f in files
        for line, what in _unsafe_calls(ast.parse(f.read_text(), str(f)))
    ]
    assert offenders == []
