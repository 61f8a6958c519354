"""``mrm-edge eval``: the paper's metrics (AUC, accuracy, F1) per head and per label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mrm_edge.cli.common import folds, model_path
from mrm_edge.cli.options import model_option, user_errors


@click.command("eval")
@model_option()
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--dataset",
    type=click.Choice(["ptbxl", "cpsc2018"]),
    default=None,
    help="Default: the model card's dataset.",
)
@click.option(
    "--folds", "folds_text", default=None, help="Default: the card's test folds (e.g. 10)."
)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the full results as JSON.",
)
@user_errors
def eval_cmd(
    model_dir: str | None,
    data: str,
    dataset: str | None,
    folds_text: str | None,
    device: str,
    json_out: str | None,
) -> None:
    """Score a model with the paper's metrics (AUC, accuracy, F1), per head and label."""
    from rich.console import Console

    from mrm_edge.training.evaluate import evaluate

    res = evaluate(model_path(model_dir), Path(data), dataset, folds(folds_text), device)
    out = Console()
    out.print(_heads_table(res))
    out.print(_labels_table(res))
    if json_out:
        Path(json_out).write_text(json.dumps(res, indent=2) + "\n")


def _heads_table(res: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(
        title=f"{res['model_name']} on {res['dataset']} folds {res['folds']} "
        f"({res['records']} records)"
    )
    for col in ("head", "macro AUC", "accuracy", "sample F1"):
        t.add_column(col, justify="right" if col != "head" else "left")
    for head, m in res["heads"].items():
        t.add_row(
            head, f"{100 * m['auc']:.2f}", f"{100 * m['accuracy']:.2f}", f"{100 * m['f1']:.2f}"
        )
    return t


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _labels_table(res: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title="per label (fused head; sensitivity/specificity at the card's thresholds)")
    for col in ("label", "positives", "AUC", "threshold", "sensitivity", "specificity"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for lab, r in res["per_label"].items():
        t.add_row(
            lab,
            str(r["positives"]),
            _pct(r["auc"]),
            f"{r['threshold']:.3f}",
            _pct(r["sensitivity"]),
            _pct(r["specificity"]),
        )
    return t
