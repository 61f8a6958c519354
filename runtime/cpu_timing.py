"""``auto`` by measurement: the CPU options timed here (a short, bounded run) on synthetic
windows, those beyond their accuracy gate against the FP32 option dropped, cached per machine,
model files, runtime versions and settings (docs/cpu-runtimes.md). ``MRM_EDGE_AUTO_PROBE=0``
(or ``auto_probe=False``) turns it off."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.base import BackendUnavailable
from mrm_edge.runtime.backends.openvino.capability import cpu_flags
from mrm_edge.runtime.backends.registry import Candidate
from mrm_edge.runtime.user_cache import usable_cores, user_cache_dir

from mrm_edge.data.synthetic import make_windows
from mrm_edge.errors import first_line
from mrm_edge.fileio import atomic_write_bytes

TIMING_ENV = "MRM_EDGE_AUTO_PROBE"
VERSIONED = ("onnxruntime", "openvino", "numpy", "mrm-edge")
MEASURE_ORDER = {"int8": 0, "bf16": 1, "fp32": 2, "fp16": 3}


@dataclass(frozen=True)
class TimingSettings:
    """The probe's bounds."""

    batch: int = 16
    """Windows per timed call: the ranking depends on it, and at 16 it ranks as a loaded
    monitor's full batches of 32 do (measured: docs/cpu-runtimes.md)."""
    calls: int = 2
    seconds_per_option: float = 1.5
    max_seconds: float = 15.0
    """The whole probe's budget: options not reached by then are left unmeasured."""


@dataclass
class TimingResult:
    options: list[dict[str, Any]]
    measured_at: str
    path: Path | None = None
    cached: bool = False


def timing_enabled(value: Any) -> bool:
    """``auto_probe`` given (True / False / settings), else ``$MRM_EDGE_AUTO_PROBE`` (default
    on; ``0``, ``off``, ``false``, ``no`` turn it off)."""
    if value is not None:
        return value is not False
    return os.environ.get(TIMING_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def cpu_model_name() -> str | None:
    """The CPU's model name from /proc/cpuinfo (None where there is none: not Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_key() -> dict[str, Any]:
    """CPU model, a digest of its flags, and the cores this process may use."""
    cpu = cpu_model_name() or "unknown"
    flags = " ".join(sorted(cpu_flags()))
    return {
        "cpu": cpu,
        "flags_sha256": hashlib.sha256(flags.encode()).hexdigest()[:16],
        "cores": usable_cores(),
    }


def installed_versions(dists: tuple[str, ...]) -> dict[str, str | None]:
    """Each distribution's installed version (None: not installed)."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {d: version(d) for d in dists}


def model_key(model: Any) -> dict[str, Any]:
    """The model: its name and the SHA-256 of every verified ONNX file (a re-export changes
    them, and with them the key)."""
    files = {a.name: a.sidecar.get("sha256") for a in model.onnx.values()}
    return {"name": model.card.name, "files": dict(sorted(files.items()))}


def probe_key(model: Any, options: list[Candidate], settings: TimingSettings) -> dict[str, Any]:
    return {
        "machine": machine_key(),
        "versions": installed_versions(VERSIONED),
        "model": model_key(model),
        "options": [c.label for c in options],
        "batch": settings.batch,
        "calls": settings.calls,
    }


def _cache_file(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    # "probe": the name this module had (runtime/probe.py), so cached measurements still read.
    return user_cache_dir("probe") / f"{digest}.json"


def _time_one(c: Candidate, x: np.ndarray, s: TimingSettings) -> tuple[dict[str, Any], Any]:
    row: dict[str, Any] = {"label": c.label, "precision": c.precision, "gate": c.gate}
    backend = c.make()
    try:
        backend.activate()
    except (BackendUnavailable, ValueError, FileNotFoundError) as e:
        row["error"] = f"failed to start ({first_line(e, with_type=False)})"
        return row, None
    try:
        out = backend.infer(x)  # untimed: first-call allocations, lazy compilation
        times = []
        start = time.perf_counter()
        for _ in range(s.calls):
            t0 = time.perf_counter()
            backend.infer(x)
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - start > s.seconds_per_option:
                break
    except Exception as e:  # a failing option is dropped with its reason, never picked
        row["error"] = f"failed ({first_line(e, with_type=False)})"
        return row, None
    finally:
        backend.deactivate()
    row["windows_per_s"] = len(x) / float(np.median(times))
    row["timed_calls"] = len(times)
    return row, out


def time_cpu_options(
    model: Any, options: list[Candidate], settings: TimingSettings
) -> TimingResult:
    """Measure ``options`` (or read the cached measurement of the same key)."""
    key = probe_key(model, options, settings)
    path = _cache_file(key)
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            if doc.get("key") == key:
                return TimingResult(doc["options"], doc["measured_at"], path, cached=True)
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: measure again and overwrite it
    t0 = time.perf_counter()
    x = make_windows(model.card, settings.batch, seed=7)
    rows, outputs = [], {}
    for c in options:
        if time.perf_counter() - t0 > settings.max_seconds:
            rows.append(
                {
                    "label": c.label,
                    "precision": c.precision,
                    "gate": c.gate,
                    "unmeasured": True,
                    "error": f"not measured: the probe's {settings.max_seconds:g} s were spent",
                }
            )
            continue
        row, out = _time_one(c, x, settings)
        rows.append(row)
        if out is not None:
            outputs[c.label] = out
    reference = next(
        (r["label"] for r in rows if r["precision"] == "fp32" and r["label"] in outputs), None
    )
    for r in rows:
        if r["label"] not in outputs:
            r["passed"] = False
            continue
        if reference is None:  # no FP32 output to check on: the export's gates stand alone
            r["max_abs_dp"], r["passed"] = None, True
            continue
        dp = float(np.abs(outputs[r["label"]] - outputs[reference]).max())
        r["max_abs_dp"], r["reference"] = dp, reference
        r["passed"] = r["gate"] is None or dp <= r["gate"]
    result = TimingResult(rows, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), path)
    doc = {"key": key, "options": rows, "measured_at": result.measured_at}
    atomic_write_bytes(path, (json.dumps(doc, indent=2) + "\n").encode())
    return result


def _figure(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['label']} {r['error']}"
    dp = r.get("max_abs_dp")
    text = f"{r['label']} {r['windows_per_s']:.1f}/s"
    if dp is not None:
        text += f", |Δp| {dp:.1e}"
        if not r["passed"]:
            text += f" > gate {r['gate']:.1e}, refused"
    return text


def order_by_measurement(
    model: Any, candidates: list[Candidate], settings: TimingSettings
) -> tuple[list[Candidate], TimingResult | None]:
    """``candidates`` with the measurable ones (where the first of them stood) reordered by
    measured throughput, those that failed their gate or to start removed, and each one's
    ``why`` stating the figures. Unchanged (and None) with fewer than two measurable."""
    measurable = [c for c in candidates if c.measurable]
    if len(measurable) < 2:
        return candidates, None
    # Measured in the order most likely to matter, so a spent budget leaves out the rest:
    # INT8 and BF16 first, FP16 (emulated on CPUs) last. The ranking is by measurement.
    # The first FP32 option goes first of all: it is the reference the others are checked on.
    ref = next((c for c in measurable if c.precision == "fp32"), None)
    rest = sorted(
        (c for c in measurable if c is not ref),
        key=lambda c: MEASURE_ORDER.get(c.precision or "", 9),
    )
    first_measured = [ref, *rest] if ref else rest
    result = time_cpu_options(model, first_measured, settings)
    rows = {r["label"]: r for r in result.options}
    good = [c for c in measurable if rows.get(c.label, {}).get("passed")]
    good.sort(key=lambda c: -rows[c.label]["windows_per_s"])
    # Not reached within the budget: kept after the measured ones, in the static order (their
    # export gate still holds; only the probe's own check is missing), and said so.
    unmeasured = [c for c in measurable if rows.get(c.label, {}).get("unmeasured")]
    when = "cached probe of " if result.cached else "probe just run, "
    summary = "; ".join(_figure(rows[c.label]) for c in measurable if c.label in rows)
    basis = f"measured here ({when}{result.measured_at}, batch {settings.batch}): {summary}"
    ranked = []
    for i, c in enumerate(good):
        r = rows[c.label]
        place = "fastest CPU option" if i == 0 else f"CPU option {i + 1} by speed"
        why = f"{place}, {r['windows_per_s']:.1f} windows/s; {basis}"
        ranked.append(replace(c, why=why))
    for c in unmeasured:
        ranked.append(replace(c, why=f"{c.why} (not measured: the probe's budget was spent)"))
    first = candidates.index(measurable[0])
    before = [c for c in candidates[:first] if not c.measurable]
    after = [c for c in candidates[first:] if not c.measurable]
    return before + ranked + after, result
