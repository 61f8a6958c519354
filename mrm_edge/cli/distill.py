"""``mrm-edge distill``: a smaller MRM-Net trained from a trained teacher's soft labels beside
the labels, with ``train``'s data, folds, resume, checkpoints and card (docs/model.md)."""

from __future__ import annotations

from typing import Any

import click

from mrm_edge.cli.options import user_errors
from mrm_edge.cli.train import run_training, training_options


@click.command()
@click.option(
    "--teacher",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="The trained teacher's model directory (card.json + model.safetensors).",
)
@training_options(preset_default="edge")
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="T: teacher and student logits are divided by T before the sigmoid.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Weight of the teacher's term beside the paper's loss (0: labels only).",
)
@user_errors
def distill(teacher: str, temperature: float, alpha: float, **kw: Any) -> None:
    """Distil a trained model (--teacher) into a smaller one; writes OUT/model (weights + card)."""
    from mrm_edge.training.config import DistillConfig

    run_training(kw, DistillConfig(teacher, temperature, alpha))
