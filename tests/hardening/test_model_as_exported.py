"""A model is what was exported, or it is refused (issue 20, findings 4 and 5's load part).

Every model directory is built in ``tmp_path`` from the shipped model
(``models/mrm-net-ptbxl-superdiagnostic``, copied, never touched) and run through the real
``mrm-edge`` executable: one ``Error:`` line naming the file and what was expected, no
traceback, exit 1, and nothing classified.

* Finding 4: a card.json edited after export (thresholds.MI 0.01 turned NORM into MI) is
  refused naming the field; ``--accept-card-tuning`` runs it, says so at start and in the
  event log's start line; fields the graph depends on are refused even then.
* Finding 5 (load): an ONNX whose outputs contradict its card (5 outputs for a 4-label card
  and sidecar, 6 for 5 labels declared honestly or hidden behind a declared 5, a label
  dimension left symbolic, float64 outputs, 8 input leads) is refused by monitor, predict,
  bench and serve at load, before the first window; the monitor does not fall back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.export.sidecar import write_sidecar
from mrm_edge.runtime.model import DeployedModel

from mrm_edge.artifacts import onnx_io, read_sidecar
from mrm_edge.card import ModelCard, export_record
from tests.eventlog import read_events
from tests.fakes import card_stamp, make_onnx
from tests.triton_fixtures import free_ports

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "mrm-net-ptbxl-superdiagnostic"
EXE = str(Path(sys.executable).parent / "mrm-edge")
EXPORTED_MI = json.loads((SHIPPED / "card.json").read_text())["thresholds"]["MI"]


# =========================================================================== helpers


def copy_model(dst: Path, onnx: str = "model.int8.onnx") -> Path:
    """The shipped card and one ONNX file + sidecar (no weights: nothing else can run)."""
    dst.mkdir(parents=True)
    for name in ("card.json", onnx, onnx + ".json"):
        shutil.copy(SHIPPED / name, dst / name)
    return dst


def edit_card(d: Path, change: Callable[[dict], object]) -> None:
    card = json.loads((d / "card.json").read_text())
    change(card)
    (d / "card.json").write_text(json.dumps(card, indent=2))


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


def refused(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 1, no traceback, exactly one ``Error:`` line holding every needle; that line."""
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def predict(d: Path, *extra: str) -> subprocess.CompletedProcess:
    return run("predict", "--model", str(d), "--patients", "2", "--seconds", "10", *extra)


def monitor(d: Path, events: Path, *extra: str) -> subprocess.CompletedProcess:
    return run(
        "monitor", "--model", str(d), "--streams", "1", "--speed", "max", "--duration", "4",
        "--no-ui", "--events", str(events), *extra,
    )  # fmt: skip


def bench(d: Path, precision: str) -> subprocess.CompletedProcess:
    return run(
        "bench", "--model", str(d), "--backends", "onnxruntime", "--precisions", precision,
        "--batch-sizes", "1", "--warmup", "1", "--repeats", "3", "--no-accuracy",
        "--no-streaming", "--no-peaks",
    )  # fmt: skip


def serve(d: Path, tmp: Path) -> subprocess.CompletedProcess:
    p = free_ports()
    return run(
        "serve", "--model", str(d), "--http-port", str(p.http), "--grpc-port", str(p.grpc),
        "--metrics-port", str(p.metrics), "--repo", str(tmp / "repo"), "--threads", "1",
        timeout=120,
    )  # fmt: skip


# =========================================================================== finding 4


def test_the_shipped_sidecars_record_the_shipped_card() -> None:
    card = ModelCard.load(SHIPPED)
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8-sym.onnx"):
        assert read_sidecar(SHIPPED / name)["exported_card"] == export_record(card), name
    m = DeployedModel.load(SHIPPED)
    assert m.card_changes == () and m.tuning_lines() == []
    assert "model.onnx" in m.onnx["fp32"].name and not any(".onnx" in k for k in m.refused)


def test_thresholds_edited_after_export_are_refused_naming_the_field(tmp_path: Path) -> None:
    d = copy_model(tmp_path / "m")
    edit_card(d, lambda c: c["thresholds"].update(MI=0.01))
    want = f"{d}/card.json: thresholds.MI changed since export (0.01, exported {EXPORTED_MI!r})"
    refused(predict(d), want, "pass --accept-card-tuning")
    events = tmp_path / "events.jsonl"
    r = monitor(d, events)
    refused(r, want, "pass --accept-card-tuning")
    assert not events.exists()  # refused before the event log (or anything) started


def test_the_opt_in_runs_the_tuned_card_and_says_so(tmp_path: Path) -> None:
    d = copy_model(tmp_path / "m")
    edit_card(d, lambda c: c["thresholds"].update(MI=0.01))
    said = f"card.json: thresholds.MI 0.01 (exported {EXPORTED_MI!r}), accepted by"
    r = predict(d, "--accept-card-tuning", "--json")
    assert r.returncode == 0, r.stderr
    assert said in r.stderr.splitlines()[0]  # the backend line, before any result
    windows = [json.loads(line) for line in r.stdout.splitlines()]
    assert windows and all(w["status"] == "ok" for w in windows)
    # The tuned threshold is the one applied (0.01, not the exported one).
    for w in windows:
        assert ("MI" in w["positive"]) == (w["probabilities"]["MI"] >= 0.01), w
    assert any(EXPORTED_MI > w["probabilities"]["MI"] >= 0.01 for w in windows)

    events = tmp_path / "events.jsonl"
    r = monitor(d, events, "--accept-card-tuning")
    assert r.returncode == 0, r.stderr[-2000:]
    assert said in r.stderr
    assert r.stderr.index(said) < r.stderr.index("windows")  # at start, before the summary
    start = read_events(events)[0]
    assert start["type"] == "start" and start["thresholds"]["MI"] == 0.01
    assert start["knobs"]["accept_card_tuning"] is True
    assert len(start["knobs"]["card_tuning"]) == 1 and said in start["knobs"]["card_tuning"][0]


def test_the_opt_in_on_an_unchanged_card_is_said_too(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    r = monitor(copy_model(tmp_path / "m"), events, "--accept-card-tuning")
    assert r.returncode == 0, r.stderr[-2000:]
    line = "--accept-card-tuning: card.json is as exported, nothing to accept"
    assert line in r.stderr
    assert read_events(events)[0]["knobs"]["card_tuning"] == [line]


def _swap_cd_hyp(c: dict) -> None:
    c["labels"][:2] = c["labels"][1::-1]


FIXED_EDITS = {
    "labels": (_swap_cd_hyp, "labels changed since export (['HYP', 'CD', 'MI'"),
    "window": (lambda c: c.update(window_samples=500), "window_samples changed since export"),
    "leads": (lambda c: c["leads"].reverse(), "leads changed since export (['V6', 'V5'"),
    "normalisation": (
        lambda c: c["normalization"]["std"].__setitem__(0, 1.0),
        "normalization.std changed since export",
    ),
}


@pytest.mark.parametrize("edit", list(FIXED_EDITS))
def test_what_the_graph_depends_on_is_refused_even_with_the_opt_in(
    tmp_path: Path, edit: str
) -> None:
    change, needle = FIXED_EDITS[edit]
    d = copy_model(tmp_path / "m")
    edit_card(d, change)
    refused(predict(d, "--accept-card-tuning"), f"{d}/card.json: {needle}", "re-export")


def test_an_older_sidecar_verifies_an_unchanged_card_and_says_how_to_restamp(
    tmp_path: Path,
) -> None:
    d = copy_model(tmp_path / "m")
    sidecar = d / "model.int8.onnx.json"
    doc = json.loads(sidecar.read_text())
    del doc["exported_card"]  # as written before per-field records
    sidecar.write_text(json.dumps(doc))
    original = (d / "card.json").read_bytes()
    assert predict(d).returncode == 0  # byte-identical card: the old scheme verifies it

    edit_card(d, lambda c: c["thresholds"].update(MI=0.01))
    refused(predict(d), f"{d}/card.json: changed since export", "--restamp", "re-export")
    # --restamp never records an edited card as the exported one.
    refused(run("export", "--model", str(d), "--restamp"), "not the card model.int8.onnx")
    assert "exported_card" not in json.loads(sidecar.read_text())

    (d / "card.json").write_bytes(original)
    r = run("export", "--model", str(d), "--restamp")
    assert r.returncode == 0 and f"restamped\t{sidecar}" in r.stdout, r.stderr
    assert json.loads(sidecar.read_text())["exported_card"] == export_record(ModelCard.load(d))
    edit_card(d, lambda c: c["thresholds"].update(MI=0.01))
    refused(predict(d), "thresholds.MI changed since export (0.01")


def test_a_record_edited_to_match_the_card_is_refused(tmp_path: Path) -> None:
    d = copy_model(tmp_path / "m")
    edit_card(d, lambda c: c["thresholds"].update(MI=0.01))
    sidecar = d / "model.int8.onnx.json"
    doc = json.loads(sidecar.read_text())
    doc["exported_card"]["fields"]["thresholds"]["MI"] = 0.01  # its SHA-256 left as exported
    sidecar.write_text(json.dumps(doc))
    refused(predict(d), f"{sidecar}: 'exported_card' is not a record written by")


# =========================================================================== finding 5


def _with_extra_column(src: Path, dst: Path, declared: int | str, dtype: str = "float") -> None:
    """``src`` with one more output column (a copy of the first), its output declared
    ``[batch, declared]``; ``dtype="double"`` also casts the output to float64."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    out = g.output[0].name
    for node in g.node:
        node.output[:] = ["t_inner" if o == out else o for o in node.output]
    g.initializer.extend(
        numpy_helper.from_array(np.array([v], np.int64), name)
        for name, v in (("t_start", 0), ("t_end", 1), ("t_axis", 1))
    )
    last = "t_wide" if dtype == "double" else out
    g.node.extend(
        [
            helper.make_node("Slice", ["t_inner", "t_start", "t_end", "t_axis"], ["t_col"]),
            helper.make_node("Concat", ["t_inner", "t_col"], [last], axis=1),
        ]
    )
    if dtype == "double":
        g.node.append(helper.make_node("Cast", [last], [out], to=TensorProto.DOUBLE))
        g.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    dim = g.output[0].type.tensor_type.shape.dim[1]
    if isinstance(declared, str):
        dim.dim_param = declared
    else:
        dim.dim_value = declared
    onnx.save(m, str(dst))


def _sidecar_as_exported(d: Path, onnx_name: str) -> None:
    """The sidecar an export of this card would write for ``onnx_name`` (so only the graph
    itself can contradict the card)."""
    card = ModelCard.load(d)
    path = d / onnx_name
    extra = {"labels": card.labels, "sampling_rate": 100, "window_samples": 1000}
    write_sidecar(path, {"precision": "fp32", **onnx_io(path), **extra, **card_stamp(d)})


def five_outputs_four_labels(d: Path) -> None:
    """The issue's case: the shipped 5-output ONNX with a 4-label card and sidecar."""

    def drop_sttc(c: dict) -> None:
        c["labels"].remove("STTC")
        c["thresholds"].pop("STTC")
        c["alarm_labels"].remove("STTC")

    edit_card(d, drop_sttc)
    _sidecar_as_exported(d, "model.onnx")


def six_outputs_declared(d: Path) -> None:
    _with_extra_column(SHIPPED / "model.onnx", d / "model.onnx", 6)
    _sidecar_as_exported(d, "model.onnx")


def six_outputs_declared_five(d: Path) -> None:
    _with_extra_column(SHIPPED / "model.onnx", d / "model.onnx", 5)  # a graph that lies
    _sidecar_as_exported(d, "model.onnx")


def symbolic_label_dimension(d: Path) -> None:
    _with_extra_column(SHIPPED / "model.onnx", d / "model.onnx", "labels")
    _sidecar_as_exported(d, "model.onnx")


def float64_outputs(d: Path) -> None:
    _with_extra_column(SHIPPED / "model.onnx", d / "model.onnx", 5, dtype="double")
    _sidecar_as_exported(d, "model.onnx")


def eight_input_leads(d: Path) -> None:
    make_onnx(d / "model.onnx", dims=(8, 1000))
    _sidecar_as_exported(d, "model.onnx")


# case → (builder, what the load-time line says, what the zero-window line says)
HOSTILE = {
    "5 outputs, 4-label card": (
        five_outputs_four_labels,
        "output 'probabilities' has shape ['batch', 5], the card needs [batch, 4] "
        "(4 labels: CD, HYP, MI, NORM)",
    ),
    "6 outputs declared": (
        six_outputs_declared,
        "output 'probabilities' has shape ['batch', 6], the card needs [batch, 5]",
    ),
    "6 outputs declared as 5": (
        six_outputs_declared_five,
        "one zero window gives outputs of shape (1, 6);",
    ),
    "symbolic label dimension": (
        symbolic_label_dimension,
        "output 'probabilities' has shape ['batch', 'labels'], the card needs [batch, 5]",
    ),
    "float64 outputs": (float64_outputs, "output 'probabilities' is double, expected float"),
    "8 input leads": (
        eight_input_leads,
        "input 'ecg' has shape ['batch', 8, 1000], the card needs [batch, 12, 1000] (12 leads)",
    ),
}


def hostile_model(tmp_path: Path, case: str) -> tuple[Path, str]:
    build, needle = HOSTILE[case]
    d = copy_model(tmp_path / "m", onnx="model.onnx")
    build(d)
    return d, needle


@pytest.mark.parametrize("case", list(HOSTILE))
def test_predict_refuses_outputs_that_contradict_the_card(tmp_path: Path, case: str) -> None:
    d, needle = hostile_model(tmp_path, case)
    line = refused(predict(d), "model.onnx", needle)
    assert "zip()" not in line


@pytest.mark.parametrize("case", ["5 outputs, 4-label card", "6 outputs declared as 5"])
def test_monitor_refuses_them_at_load_and_does_not_fall_back(tmp_path: Path, case: str) -> None:
    d, needle = hostile_model(tmp_path, case)
    events = tmp_path / "events.jsonl"
    r = monitor(d, events)
    refused(r, "model.onnx", needle)
    assert "fallback" not in r.stderr.lower() and "switch" not in r.stderr.lower()
    assert not [e for e in read_events(events) if e.get("type") in ("start", "window")]


@pytest.mark.parametrize("case", ["5 outputs, 4-label card", "6 outputs declared as 5"])
def test_bench_refuses_them_before_timing(tmp_path: Path, case: str) -> None:
    d, needle = hostile_model(tmp_path, case)
    r = bench(d, "fp32")
    refused(r, "model.onnx", needle)
    assert "windows/s" not in r.stderr + r.stdout


@pytest.mark.parametrize("case", ["5 outputs, 4-label card", "6 outputs declared as 5"])
def test_serve_refuses_them_before_the_server_starts(tmp_path: Path, case: str) -> None:
    d, needle = hostile_model(tmp_path, case)
    r = serve(d, tmp_path)
    refused(r, "model.onnx", needle)
    assert "tritonserver ready" not in r.stderr
