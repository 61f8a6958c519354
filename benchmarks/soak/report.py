"""The soak's report: the figures a run measured (windows, RSS, latency by quarter) and the
checks, each PASS or FAIL with its figures."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.soak.sink import RESERVOIR_PER_QUARTER, SoakSink

__all__ = ["SoakReport", "checks", "latency_figures", "rss_figures", "window_figures"]


@dataclass
class SoakReport:
    """What a soak measured and whether it passed (``checks``: name, passed, detail)."""

    model: str
    backend: str
    backend_reason: str
    source: str
    config: dict[str, Any]
    windows: dict[str, Any]
    rss: dict[str, Any]
    latency: dict[str, Any]
    run: dict[str, Any]
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c["passed"] for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def lines(self) -> list[str]:
        """The report as plain text (what the command prints)."""
        w, r, lat, run, cfg = self.windows, self.rss, self.latency, self.run, self.config

        def ms(v: float | None) -> str:
            return "–" if v is None else f"{v:.1f}"

        def mb(v: int | None) -> str:
            return "–" if v is None else f"{v / 2**20:.1f} MB"

        out = [
            f"soak: {cfg['streams']} streams x {cfg['seconds']:g} s of signal, hop "
            f"{cfg['hop_s']:g} s, {cfg['fs']} Hz source at max speed; overload "
            f"{cfg['overload']}, max batch {cfg['max_batch']}, max queue {cfg['max_queue']}",
            f"model {self.model}; backend {self.backend}",
            f"  why: {self.backend_reason}",
            f"wall {run['wall_s']:.1f} s, {run['windows_per_s']:.1f} windows/s "
            f"(mean batch {ms(run['mean_batch'])}, max queue {run['max_queue_depth']}); "
            f"{run['stopped_by']}",
            f"windows: expected {w['expected']} ({w['expected_per_stream']} per stream), "
            f"produced {w['produced']}, classified {w['classified']}, rejected {w['rejected']}"
            + (f" ({_pairs(w['rejected_by_reason'])})" if w["rejected_by_reason"] else "")
            + f", dropped {w['dropped']}"
            + (f" ({_pairs(w['dropped_by_cause'])})" if w["dropped_by_cause"] else "")
            + f", lost {w['lost']}",
            f"rss ({r['source']}): start {mb(r['start_bytes'])}, after warm-up "
            f"{mb(r['warm_bytes'])}, end {mb(r['end_bytes'])} ({r['end_at']}), peak "
            f"{mb(r['peak_bytes'])}; "
            f"{len(r['samples'])} samples",
            "latency window-complete→result, ms, by quarter of simulated time:",
            "  quarter  simulated s      windows     p50     p90     p99     max",
        ]
        for q in lat["quarters"]:
            out.append(
                f"  Q{q['quarter']}  {q['from_s']:>7.0f}-{q['to_s']:<7.0f} {q['classified']:>10}"
                f" {ms(q['p50']):>7} {ms(q['p90']):>7} {ms(q['p99']):>7} {ms(q['max']):>7}"
            )
        for c in self.checks:
            out.append(f"{'PASS' if c['passed'] else 'FAIL'}  {c['name']}: {c['detail']}")
        out.append(f"soak {'PASSED' if self.passed else 'FAILED'}")
        return out


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _pct(a: float, b: float) -> float:
    return (b - a) / a * 100.0


def _window_checks(w: dict[str, Any], errors: list[str], backend_errors: int) -> list[dict]:
    """accounting (none lost, none counted twice), dropped (none) and errors (none)."""
    return [
        {
            "name": "accounting",
            "passed": w["lost"] == 0 and w["duplicated"] == 0,
            "detail": (
                f"expected {w['expected']}, classified {w['classified']} + rejected "
                f"{w['rejected']} + dropped {w['dropped']} = {w['accounted']}; lost {w['lost']}"
                + (f", counted twice {w['duplicated']}" if w["duplicated"] else "")
                + (
                    f"; {w['streams_mismatched']} stream(s) off, e.g. "
                    + ", ".join(f"{k} {v}" for k, v in w["mismatch_examples"].items())
                    if w["streams_mismatched"]
                    else ""
                )
            ),
        },
        {
            "name": "dropped",
            "passed": w["dropped"] == 0,
            "detail": f"{w['dropped']} dropped"
            + (f" ({_pairs(w['dropped_by_cause'])})" if w["dropped_by_cause"] else ""),
        },
        {
            "name": "errors",
            "passed": not errors and backend_errors == 0,
            "detail": (
                f"{len(errors)} run/stream error(s), {backend_errors} failed batch(es)"
                + (f"; first: {errors[0]}" if errors else "")
            ),
        },
    ]


def _rss_check(rss: dict[str, Any], max_rss_growth_pct: float) -> dict[str, Any]:
    """Resident memory growth after warm-up within the limit (FAIL when not measured)."""
    warm, end = rss["warm_bytes"], rss["end_bytes"]
    if not (warm and end):
        return {"name": "rss growth", "passed": False, "detail": f"not measured ({rss['source']})"}
    growth = rss["growth_pct"]
    return {
        "name": "rss growth",
        "passed": growth <= max_rss_growth_pct,
        "detail": f"{warm / 2**20:.1f} MB after warm-up -> {end / 2**20:.1f} MB at the "
        f"end: {growth:+.2f} % (limit {max_rss_growth_pct:g} %)",
    }


def _latency_check(
    latency: dict[str, Any], max_p99_ratio: float, latency_floor_ms: float
) -> dict[str, Any]:
    """Last-quarter p99 at most max(first x ratio, first + floor)."""
    first, last = latency["quarters"][0]["p99"], latency["quarters"][-1]["p99"]
    if first is None or last is None:
        return {
            "name": "latency",
            "passed": False,
            "detail": "no classified window in the first or the last quarter",
        }
    limit = max(first * max_p99_ratio, first + latency_floor_ms)
    return {
        "name": "latency",
        "passed": last <= limit,
        "detail": f"p99 Q1 {first:.1f} ms -> Q4 {last:.1f} ms: x{latency['p99_ratio']:.2f}"
        f" (limit {limit:.1f} ms = max(x{max_p99_ratio:g}, +{latency_floor_ms:g} ms))",
    }


def checks(
    windows: dict[str, Any],
    rss: dict[str, Any],
    latency: dict[str, Any],
    errors: list[str],
    backend_errors: int,
    *,
    max_rss_growth_pct: float,
    max_p99_ratio: float,
    latency_floor_ms: float,
) -> list[dict[str, Any]]:
    """The five checks in report order: accounting, dropped, errors, rss growth, latency."""
    return [
        *_window_checks(windows, errors, backend_errors),
        _rss_check(rss, max_rss_growth_pct),
        _latency_check(latency, max_p99_ratio, latency_floor_ms),
    ]


def window_figures(
    sink: SoakSink, monitor: Any, per_stream: int, streams: int, source: Any
) -> dict[str, Any]:
    """Expected, produced and accounted windows; per stream, lost and counted twice."""
    lost = duplicated = mismatched = 0
    examples: dict[str, str] = {}
    for sid in source.patients:  # every stream the source had, seen by the sink or not
        c = sink.per_stream.get(sid, Counter())
        got = c["classified"] + c["rejected"] + c["dropped"]
        if got != per_stream:
            mismatched += 1
            lost += max(0, per_stream - got)
            duplicated += max(0, got - per_stream)
            if len(examples) < 5:
                examples[sid] = f"{got}/{per_stream}"
    totals = Counter()
    for c in sink.per_stream.values():
        totals.update(c)
    return {
        "expected_per_stream": per_stream,
        "expected": per_stream * streams,
        "produced": sum(monitor.accounting.windows_produced.values()),
        "classified": totals["classified"],
        "rejected": totals["rejected"],
        "rejected_by_reason": dict(sink.rejected_by_reason),
        "dropped": totals["dropped"],
        "dropped_by_cause": dict(sink.dropped_by_cause),
        "accounted": sink.accounted,
        "lost": lost,
        "duplicated": duplicated,
        "streams_mismatched": mismatched,
        "mismatch_examples": examples,
    }


def rss_figures(sink: SoakSink) -> dict[str, Any]:
    """RSS at start, after warm-up (end of Q1), at the end and its peak; the growth."""
    marks = sink.rss_marks
    warm = marks.get("q1")
    # The end: at the last expected window; if some never came, at the sink's close.
    end_at = "last window" if "last" in marks else "close"
    end = marks.get("last", marks.get("close"))
    values = [v for _, _, v in sink.rss]
    return {
        "source": sink.rss_source,
        "start_bytes": marks.get("start"),
        "warm_bytes": warm,
        "end_bytes": end,
        "end_at": end_at,
        "close_bytes": marks.get("close"),
        "peak_bytes": max(values) if values else None,
        "growth_pct": _pct(warm, end) if warm and end else None,
        "quarter_marks_bytes": {k: v for k, v in marks.items() if k.startswith("q")},
        "samples": [[round(t, 3), round(s, 3), v] for t, s, v in sink.rss],
        "note": "warm-up = the end of the first quarter (the first window of the second)",
    }


def latency_figures(sink: SoakSink) -> dict[str, Any]:
    """p50 / p90 / p99 / max by quarter of simulated time, and the last / first p99."""
    quarters = []
    for q in range(4):
        lo, hi = sink.quarter_bounds(q)
        counts = sink.quarter_counts[q]
        quarters.append(
            {
                "quarter": q + 1,
                "from_s": lo,
                "to_s": hi,
                "classified": counts["classified"],
                "rejected": counts["rejected"],
                "dropped": counts["dropped"],
                "latency_sampled": min(sink.latency[q].seen, RESERVOIR_PER_QUARTER),
            }
            | sink.latency[q].percentiles()
        )
    first, last = quarters[0]["p99"], quarters[-1]["p99"]
    return {
        "quarters": quarters,
        "p99_ratio": last / first if first and last is not None else None,
        "note": "quarters of the window-end span [window, seconds] of simulated time",
    }
