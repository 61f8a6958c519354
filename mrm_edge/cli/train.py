"""``mrm-edge train``: the paper's training recipe on PTB-XL or CPSC 2018. Its options and run
are shared with ``mrm-edge distill`` (:func:`training_options`, :func:`run_training`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mrm_edge.cli.common import console, csv, folds, logger, progress_bar
from mrm_edge.cli.options import option_group, user_errors

# mrm_edge.model.PRESETS' names, written out so `--help` imports no torch (a test holds them equal).
PRESET_NAMES = ("paper", "small", "edge")
PRESET_HELP = (
    "paper: C=128, stem 32/64/128/128; small: C=64, same stem; edge: C=32, stem 16/32/32/32 "
    "(the shipped edge model's shape)."
)


def training_options(preset_default: str) -> Callable[[Any], Any]:
    """The data, model shape, recipe and run options of ``train`` and ``distill``."""
    return option_group(
        [
            click.option(
                "--data",
                required=True,
                type=click.Path(exists=True, file_okay=False),
                help="Dataset root (PTB-XL or CPSC 2018 in its own layout).",
            ),
            click.option(
                "--dataset",
                type=click.Choice(["ptbxl", "cpsc2018"]),
                default="ptbxl",
                show_default=True,
            ),
            click.option(
                "--task",
                default=None,
                help="PTB-XL: all, diagnostic, subdiagnostic, superdiagnostic (default), form, "
                "rhythm. CPSC 2018: all (default).",
            ),
            click.option(
                "--preset",
                type=click.Choice(PRESET_NAMES),
                default=preset_default,
                show_default=True,
                help=PRESET_HELP,
            ),
            click.option(
                "--width", type=click.IntRange(8), default=None, help="C, overriding the preset's."
            ),
            click.option(
                "--stem",
                default=None,
                help="The four stem widths, e.g. 16,32,64,64, overriding the preset's.",
            ),
            click.option("--epochs", type=click.IntRange(1), default=100, show_default=True),
            click.option("--batch-size", type=click.IntRange(2), default=64, show_default=True),
            click.option("--lr", type=float, default=1e-3, show_default=True),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option(
                "--sampling-rate",
                type=click.Choice(["100", "500"]),
                default="100",
                show_default=True,
                help="Model input rate (the paper uses 100 Hz).",
            ),
            click.option("--train-folds", default="1-8", show_default=True),
            click.option("--val-folds", default="9", show_default=True),
            click.option("--test-folds", default="10", show_default=True),
            click.option(
                "--head-fusion",
                type=click.Choice(["mean", "low", "high"]),
                default="mean",
                show_default=True,
                help="How the deployed output combines the two heads.",
            ),
            click.option(
                "--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ..."
            ),
            click.option("--name", default="", help="Model name for the card."),
            click.option(
                "--out",
                required=True,
                type=click.Path(file_okay=False),
                help="Run directory; rerunning with the same --out resumes.",
            ),
        ]
    )


def run_training(kw: dict[str, Any], distill: Any = None) -> None:
    """Train (or, with a ``DistillConfig``, distil) with the options of
    :func:`training_options`; prints the model directory."""
    from mrm_edge.model import preset
    from mrm_edge.training.trainer import TrainConfig, Trainer

    kw["sampling_rate"] = int(kw["sampling_rate"])
    for key in ("train_folds", "val_folds", "test_folds"):
        kw[key] = folds(kw[key])
    overrides: dict[str, Any] = {}
    if (width := kw.pop("width")) is not None:
        overrides["width"] = width
    if (stem := kw.pop("stem")) is not None:
        overrides["stem_channels"] = tuple(csv(stem, int))
    try:  # a bad shape: one line now, not after loading the data
        preset(kw["preset"], **overrides)
    except ValueError as e:
        raise click.UsageError(f"--width/--stem: {e}") from None
    cfg = TrainConfig(**kw, model_overrides=overrides, distill=distill)
    err = console()
    with progress_bar(err) as progress:
        model_dir = Trainer(cfg, log=logger(err), progress=progress).run()
    click.echo(str(model_dir))


@click.command()
@training_options(preset_default="paper")
@user_errors
def train(**kw: Any) -> None:
    """Train MRM-Net with the paper's recipe; writes OUT/model (weights + card)."""
    run_training(kw)
