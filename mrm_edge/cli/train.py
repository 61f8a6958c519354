"""``mrm-edge train``: the paper's training recipe on PTB-XL or CPSC 2018."""

from __future__ import annotations

from typing import Any

import click

from mrm_edge.cli.common import console, folds, logger, progress_bar
from mrm_edge.cli.options import user_errors


@click.command()
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset root (PTB-XL or CPSC 2018 in its own layout).",
)
@click.option(
    "--dataset", type=click.Choice(["ptbxl", "cpsc2018"]), default="ptbxl", show_default=True
)
@click.option(
    "--task",
    default=None,
    help="PTB-XL: all, diagnostic, subdiagnostic, superdiagnostic (default), form, "
    "rhythm. CPSC 2018: all (default).",
)
@click.option(
    "--preset",
    type=click.Choice(["paper", "small"]),
    default="paper",
    show_default=True,
    help="paper: C=128; small: C=64.",
)
@click.option("--epochs", type=click.IntRange(1), default=100, show_default=True)
@click.option("--batch-size", type=click.IntRange(2), default=64, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--sampling-rate",
    type=click.Choice(["100", "500"]),
    default="100",
    show_default=True,
    help="Model input rate (the paper uses 100 Hz).",
)
@click.option("--train-folds", default="1-8", show_default=True)
@click.option("--val-folds", default="9", show_default=True)
@click.option("--test-folds", default="10", show_default=True)
@click.option(
    "--head-fusion",
    type=click.Choice(["mean", "low", "high"]),
    default="mean",
    show_default=True,
    help="How the deployed output combines the two heads.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--name", default="", help="Model name for the card.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory; rerunning with the same --out resumes.",
)
@user_errors
def train(**kw: Any) -> None:
    """Train MRM-Net with the paper's recipe; writes OUT/model (weights + card)."""

    from mrm_edge.training.trainer import TrainConfig, Trainer

    kw["sampling_rate"] = int(kw["sampling_rate"])
    for key in ("train_folds", "val_folds", "test_folds"):
        kw[key] = folds(kw[key])
    cfg = TrainConfig(**kw)
    err = console()
    with progress_bar(err) as progress:
        model_dir = Trainer(cfg, log=logger(err), progress=progress).run()
    click.echo(str(model_dir))
