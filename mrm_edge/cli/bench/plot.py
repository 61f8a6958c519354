"""The bench's figure: throughput against batch size, one line per backend and precision,
both axes on a log scale (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def plot_throughput(results: Iterable[Any], path: str | Path, title: str) -> Path:
    """Write a PNG of ``results`` (the bench's ``Result`` rows) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in results:
        key = f"{r.backend} {r.precision} ({r.device})"
        series[key].append((r.batch_size, r.throughput))
    if not series:
        raise ValueError("plot: no results to draw")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for key, pts in sorted(series.items()):
            pts.sort()
            ax.plot([b for b, _ in pts], [t for _, t in pts], marker="o", label=key)
        ax.set_xscale("log", base=2)
        sizes = sorted({b for pts in series.values() for b, _ in pts})
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("throughput (windows/s)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out
