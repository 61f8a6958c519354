"""Click options shared by several commands (``--model`` by most; the runtime knobs by
``monitor`` and ``soak``): one definition, so they mean the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")  # runtime.selection.BACKEND_CHOICES
PRECISIONS = ("fp32", "fp16", "int8")


def model_option(what: str = "Model") -> Callable[[F], F]:
    """``--model DIR`` (into ``model_dir``; None means the shipped model)."""
    return click.option(
        "--model",
        "model_dir",
        type=click.Path(exists=True, file_okay=False),
        default=None,
        help=f"{what} directory (default: the shipped model).",
    )


def runtime_options(max_batch: int = 32) -> Callable[[F], F]:
    """``--backend``, ``--precision``, ``--max-batch`` and ``--max-delay`` (the batcher's two
    knobs, as in Triton's dynamic batcher)."""
    options = [
        click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True),
        click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            default=None,
            help="Model variant (default: the fastest available on the backend).",
        ),
        click.option(
            "--max-batch",
            type=click.IntRange(1),
            default=max_batch,
            show_default=True,
            help="Dispatch a batch as soon as this many windows wait.",
        ),
        click.option(
            "--max-delay",
            "max_delay_ms",
            type=click.FloatRange(min=0),
            default=50.0,
            show_default=True,
            help="...or when the oldest waiting window is this old (ms).",
        ),
    ]

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply
