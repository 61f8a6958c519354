"""Per-lead signal quality of one window, so a bad lead is reported instead of classified.

Five checks (``QualityConfig``): non-finite samples, implausible amplitude, implausible
slew, a flat line, saturation; what each catches and the data the defaults were set from:
docs/monitor.md (Quality checks). Non-finite and huge samples are data here, not errors: the
checks run under ``np.errstate(all="ignore")``. Layout: window ``[samples, leads]`` mV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mrm_edge.data.dataset import LEADS


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality checks (mV and seconds)."""

    flat_ptp_mv: float = 0.01
    """A lead is flat where its peak-to-peak stays below this over ``flat_min_s``."""
    flat_min_s: float = 1.0
    """Shortest flat stretch reported; shorter ones are normal (isoelectric segments)."""
    saturation_mv: float | None = None
    """``|x|`` at or above this counts as at the rail; None disables the check."""
    saturation_min_s: float = 0.04
    """Shortest run at the rail reported."""
    range_mv: float = 50.0
    """A finite ``|x|`` above this is physically implausible (see the module docstring)."""
    slew_mv_per_s: float = 2_000.0
    """A step between consecutive samples faster than this is implausible."""

    def __post_init__(self) -> None:
        names = ("flat_ptp_mv", "flat_min_s", "saturation_min_s", "range_mv", "slew_mv_per_s")
        for name in names:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and np.isfinite(value)):
                raise ValueError(f"QualityConfig: {name} must be a positive number, got {value!r}")
        s = self.saturation_mv
        if s is not None and not (isinstance(s, (int, float)) and s > 0 and np.isfinite(s)):
            raise ValueError(f"QualityConfig: saturation_mv must be None or > 0 mV, got {s!r}")


@dataclass(frozen=True)
class LeadQuality:
    """Findings for one lead: counts in samples, durations in seconds."""

    lead: str
    nonfinite: int = 0
    flat_s: float = 0.0
    saturated_s: float = 0.0
    out_of_range: int = 0
    """Finite samples beyond ``±range_mv``."""
    too_steep: int = 0
    """Steps between finite samples faster than ``slew_mv_per_s``."""

    @property
    def ok(self) -> bool:
        return not (
            self.nonfinite or self.flat_s or self.saturated_s or self.out_of_range or self.too_steep
        )


@dataclass(frozen=True)
class QualityReport:
    """``ok`` is False when any lead has a finding; ``reasons`` has one line per finding."""

    ok: bool
    leads: tuple[LeadQuality, ...]
    reasons: tuple[str, ...]

    @property
    def bad_leads(self) -> tuple[str, ...]:
        return tuple(q.lead for q in self.leads if not q.ok)


def assess_quality(
    window: np.ndarray,
    sampling_rate: int,
    config: QualityConfig | None = None,
    lead_names: Sequence[str] = LEADS,
) -> QualityReport:
    """Check ``window`` ``[samples, leads]`` (mV at ``sampling_rate`` Hz) lead by lead."""
    cfg = config or QualityConfig()
    x = np.asarray(window)
    if x.ndim != 2 or x.shape[1] != len(lead_names):
        raise ValueError(
            f"assess_quality: window must be [samples, {len(lead_names)}], got shape {x.shape}"
        )
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)):
        raise ValueError(
            f"assess_quality: sampling_rate must be an integer Hz, got {sampling_rate!r}"
        )
    if sampling_rate <= 0:
        raise ValueError(f"assess_quality: sampling_rate must be positive, got {sampling_rate}")
    with np.errstate(all="ignore"):  # NaN, ±Inf and 1e38 are data here, flagged below
        return _assess(x, int(sampling_rate), cfg, lead_names)


def _assess(x: np.ndarray, fs: int, cfg: QualityConfig, lead_names: Sequence[str]) -> QualityReport:
    n = x.shape[0]
    # Lead-major inside: the running maxima below then run along contiguous rows.
    xt = np.ascontiguousarray(x.T if np.issubdtype(x.dtype, np.floating) else x.T.astype(float))
    nonfinite = np.zeros(xt.shape[0], np.int64)
    if not np.isfinite(xt.sum(axis=1)).all():  # a row sum is finite when all its samples are
        nonfinite = np.count_nonzero(~np.isfinite(xt), axis=1)

    flat_span = max(1, round(cfg.flat_min_s * fs))
    flat = np.zeros(xt.shape[0], np.int64)
    if n >= flat_span:
        # Exact pre-check: every flat_span stretch contains a whole aligned block of
        # flat_span // 2 samples, so a lead with no flat block has no flat stretch and skips
        # the running extrema (the common case: ~10x cheaper for a clean window).
        half = max(1, flat_span // 2)
        blocks = xt[:, : n // half * half].reshape(xt.shape[0], -1, half)
        maybe = np.flatnonzero((np.ptp(blocks, axis=2) < cfg.flat_ptp_mv).any(axis=1))
        if maybe.size:
            rows = xt[maybe]
            ptp = _rolling_max(rows, flat_span) + _rolling_max(-rows, flat_span)  # max − min
            flat[maybe] = _covered(ptp < cfg.flat_ptp_mv, flat_span)  # NaN compares False

    saturated = np.zeros(xt.shape[0], np.int64)
    if cfg.saturation_mv is not None:
        run = max(1, round(cfg.saturation_min_s * fs))
        if n >= run:
            at_rail = np.abs(xt) >= cfg.saturation_mv
            saturated = _covered(_rolling_sum(at_rail, run) == run, run)

    out_of_range, too_steep, peak_mv, peak_slew = _implausible(xt, fs, cfg, not nonfinite.any())

    leads, reasons = [], []
    for i, name in enumerate(lead_names):
        q = LeadQuality(
            name,
            int(nonfinite[i]),
            flat[i] / fs,
            saturated[i] / fs,
            int(out_of_range[i]),
            int(too_steep[i]),
        )
        leads.append(q)
        reasons += _lead_reasons(q, n, cfg, float(peak_mv[i]), float(peak_slew[i]))
    return QualityReport(not reasons, tuple(leads), tuple(reasons))


def _implausible(
    xt: np.ndarray, fs: int, cfg: QualityConfig, finite: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per lead of ``xt`` ``[leads, n]``: finite samples beyond ``±range_mv``, steps between
    finite samples faster than ``slew_mv_per_s``, and the peak ``|x|`` (mV) and step (mV/s)
    among them. Counted only for a lead over a limit (a clean window: two maxima)."""
    magnitude = np.abs(xt)
    steps = np.abs(np.diff(xt, axis=1))  # mV per sample
    if not finite:  # Inf is reported as non-finite; a step touching NaN/Inf is no slew
        magnitude[~np.isfinite(magnitude)] = 0.0
        steps[~np.isfinite(steps)] = 0.0
    peak_mv, peak_step = magnitude.max(axis=1, initial=0.0), steps.max(axis=1, initial=0.0)
    step_limit = cfg.slew_mv_per_s / fs
    out_of_range = np.zeros(len(xt), np.int64)
    too_steep = np.zeros(len(xt), np.int64)
    if (peak_mv > cfg.range_mv).any():
        out_of_range = np.count_nonzero(magnitude > cfg.range_mv, axis=1)
    if (peak_step > step_limit).any():
        too_steep = np.count_nonzero(steps > step_limit, axis=1)
    return out_of_range, too_steep, peak_mv, peak_step * fs


def _lead_reasons(
    q: LeadQuality, n: int, cfg: QualityConfig, peak_mv: float, peak_slew: float
) -> list[str]:
    """One line per finding of lead ``q`` in a window of ``n`` samples."""
    out = []
    if q.nonfinite:
        out.append(f"lead {q.lead} NaN/Inf in {q.nonfinite} of {n} samples")
    if q.flat_s:
        out.append(
            f"lead {q.lead} flat for {q.flat_s:.1f} s (peak-to-peak < {cfg.flat_ptp_mv:g} mV)"
        )
    if q.saturated_s:
        out.append(f"lead {q.lead} at the ±{cfg.saturation_mv:g} mV rail for {q.saturated_s:.2f} s")
    if q.out_of_range:
        out.append(
            f"lead {q.lead} implausible: {q.out_of_range} of {n} samples beyond "
            f"±{cfg.range_mv:g} mV (peak {peak_mv:.3g} mV)"
        )
    if q.too_steep:
        out.append(
            f"lead {q.lead} implausible: {q.too_steep} steps faster than "
            f"{cfg.slew_mv_per_s:g} mV/s (peak {peak_slew:.3g} mV/s)"
        )
    return out


def _rolling_max(x: np.ndarray, span: int) -> np.ndarray:
    """Max of every ``span``-sample stretch of each row of ``x`` ``[rows, n]`` (float):
    ``[rows, n − span + 1]``.

    Van Herk / Gil-Werman: split into blocks of ``span``; a stretch covers the tail of one
    block and the head of the next, so prefix and suffix running maxima of the blocks give
    every stretch's max in O(n) — a sliding-window view would cost O(n · span) per window.
    """
    rows, n = x.shape
    n_blocks = -(-n // span)
    padded = np.full((rows, n_blocks * span), -np.inf, x.dtype)
    padded[:, :n] = x
    blocks = padded.reshape(rows, n_blocks, span)
    prefix = np.maximum.accumulate(blocks, axis=2).reshape(rows, -1)
    suffix = np.maximum.accumulate(blocks[:, :, ::-1], axis=2)[:, :, ::-1].reshape(rows, -1)
    m = n - span + 1
    return np.maximum(suffix[:, :m], prefix[:, span - 1 : span - 1 + m])


def _rolling_sum(mask: np.ndarray, span: int) -> np.ndarray:
    """Count of True in every ``span``-sample stretch of each row."""
    cs = np.concatenate([np.zeros((mask.shape[0], 1), np.int64), np.cumsum(mask, axis=1)], 1)
    return cs[:, span:] - cs[:, :-span]


def _covered(starts: np.ndarray, span: int) -> np.ndarray:
    """Per row, how many samples lie in at least one flagged stretch, where
    ``starts[r, p]`` flags the stretch ``[p, p + span)``."""
    rows, m = starts.shape
    counts = np.zeros(rows, np.int64)
    flagged = np.flatnonzero(starts.any(axis=1))
    if flagged.size == 0:  # the usual case: nothing to measure
        return counts
    cs = np.concatenate(
        [np.zeros((flagged.size, 1), np.int64), np.cumsum(starts[flagged], axis=1)], axis=1
    )
    t = np.arange(m + span - 1)
    first = np.maximum(0, t - span + 1)  # stretches covering sample t: first..last
    last = np.minimum(t, m - 1)
    counts[flagged] = np.count_nonzero(cs[:, last + 1] - cs[:, first] > 0, axis=1)
    return counts
