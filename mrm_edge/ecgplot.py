"""The standard 12-lead layout on the clinical grid (docs/station.md), as SVG (pure Python) or
PNG (matplotlib, extra ``plot``): ``mrm-edge predict --plot FILE``; the central station's
12-lead view (``runtime/web/static/app.js``) draws the same page. Each lead is drawn at its own
2.5 s time slice, as an electrocardiograph prints them, so the layout is the one readers know.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from mrm_edge.data.dataset import LEADS

MM_PER_S = 25.0
MM_PER_MV = 10.0
SECONDS = 10.0
ROW_MM = 30.0
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM = "II"
_TITLE_MM = 10.0  # band above the grid: title and probabilities
_WIDTH_MM = SECONDS * MM_PER_S
_GRID_MM = ROW_MM * 4
_HEIGHT_MM = _TITLE_MM + _GRID_MM


def _traces(signal: np.ndarray, fs: int) -> list[tuple[str, float, np.ndarray]]:
    """(lead, row baseline in mm, [n, 2] points in mm) for the 12 cells and the rhythm strip."""
    if signal.ndim != 2 or signal.shape[0] != len(LEADS):
        raise ValueError(f"12-lead plot: signal must be [12, samples], got {signal.shape}")
    n = min(signal.shape[1], round(SECONDS * fs))
    cells = [(lead, r, c) for r, row in enumerate(LAYOUT) for c, lead in enumerate(row)]
    out = []
    for lead, row, col in [*cells, (RHYTHM, 3, None)]:
        lo, hi = (0, n) if col is None else (round(col * 2.5 * fs), round((col + 1) * 2.5 * fs))
        hi = min(hi, n)
        x = np.arange(lo, hi) / fs * MM_PER_S
        base = _TITLE_MM + (row + 0.6) * ROW_MM
        y = base - signal[LEADS.index(lead), lo:hi].astype(np.float64) * MM_PER_MV
        out.append((lead, base, np.column_stack([x, y])))
    return out


def _grid() -> list[tuple[float, float, float, float, bool]]:
    """(x1, y1, x2, y2, major) of every grid line: 1 mm minor, 5 mm major."""
    lines = [(mm, _TITLE_MM, mm, _HEIGHT_MM, mm % 5 == 0) for mm in range(int(_WIDTH_MM) + 1)]
    for mm in range(int(_GRID_MM) + 1):
        lines.append((0, _TITLE_MM + mm, _WIDTH_MM, _TITLE_MM + mm, mm % 5 == 0))
    return lines


def _title(title: str, probabilities: Mapping[str, float], findings: Sequence[str]) -> str:
    probs = "  ".join(f"{k} {v:.2f}" for k, v in probabilities.items())
    found = ", ".join(findings) or "no finding"
    return f"{title}   {probs}   ({found})   25 mm/s  10 mm/mV"


def _svg(signal: np.ndarray, fs: int, heading: str) -> str:
    """The 12-lead page as SVG text (user units are millimetres: prints to scale)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH_MM}mm" height="{_HEIGHT_MM}mm" '
        f'viewBox="0 0 {_WIDTH_MM} {_HEIGHT_MM}">',
        f'<rect width="{_WIDTH_MM}" height="{_HEIGHT_MM}" fill="#fff"/>',
    ]
    for x1, y1, x2, y2, major in _grid():
        parts.append(
            f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" '
            f'stroke="{"#e58a8a" if major else "#f6caca"}" stroke-width="{0.2 if major else 0.1}"/>'
        )
    for lead, base, pts in _traces(signal, fs):
        for run in _finite_runs(pts):
            path = " ".join(f"{x:.2f},{y:.2f}" for x, y in run)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="#000" stroke-width="0.25"/>'
            )
        x0 = pts[0, 0] if len(pts) else 0.0
        parts.append(
            f'<text x="{x0 + 1.5:.2f}" y="{base - 0.45 * ROW_MM:.2f}" font-size="3" '
            f'font-family="sans-serif">{escape(lead)}</text>'
        )
    parts.append(
        f'<text x="2" y="6.5" font-size="3.6" font-family="sans-serif" font-weight="bold">'
        f"{escape(heading)}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _finite_runs(pts: np.ndarray) -> list[np.ndarray]:
    """Consecutive finite points (NaN samples break the trace, as a lead-off gap)."""
    ok = np.isfinite(pts[:, 1])
    runs, start = [], None
    for i, good in enumerate([*ok, False]):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start > 1:
                runs.append(pts[start:i])
            start = None
    return runs


def _png(path: Path, signal: np.ndarray, fs: int, heading: str, dpi: int = 150) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError(
            f"{path}: PNG needs matplotlib: pip install 'mrm-edge[plot]' (or write .svg)"
        ) from None
    fig = plt.figure(figsize=(_WIDTH_MM / 25.4, _HEIGHT_MM / 25.4), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, _WIDTH_MM)
    ax.set_ylim(_HEIGHT_MM, 0)
    ax.axis("off")
    for x1, y1, x2, y2, major in _grid():
        ax.plot([x1, x2], [y1, y2], color="#e58a8a" if major else "#f6caca",
                lw=0.6 if major else 0.3, zorder=0)  # fmt: skip
    for lead, base, pts in _traces(signal, fs):
        ax.plot(pts[:, 0], pts[:, 1], color="black", lw=0.7)  # NaN breaks the line itself
        x0 = pts[0, 0] if len(pts) else 0.0
        ax.text(x0 + 1.5, base - 0.45 * ROW_MM, lead, fontsize=7, va="bottom")
    ax.text(2, 6.5, heading, fontsize=8, weight="bold")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def save_twelve_lead(
    path: str | Path,
    signal: np.ndarray,
    fs: int,
    *,
    title: str = "",
    probabilities: Mapping[str, float] | None = None,
    findings: Sequence[str] = (),
) -> Path:
    """Write the 12-lead page of ``signal`` ``[12, samples]`` mV at ``fs`` Hz (its first 10 s)
    to ``path``: ``.svg`` or ``.png``; ValueError (one line) for another suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise ValueError(f"--plot {path}: expected a .svg or .png file name")
    heading = _title(title, probabilities or {}, findings)
    try:
        if suffix == ".svg":
            path.write_text(_svg(signal, fs, heading), encoding="utf-8")
        else:
            _png(path, signal, fs, heading)
    except OSError as e:
        raise ValueError(f"--plot {path}: cannot write ({e.strerror})") from None
    return path
