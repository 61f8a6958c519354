"""Helpers shared by the commands: the stderr console, plain progress lines and the parsers
of comma-separated option values (folds, lists, TensorRT batch profiles)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def console() -> Any:
    """A rich console on stderr: stdout stays for the command's results."""
    from rich.console import Console

    return Console(stderr=True)


def progress_bar(err: Any) -> Any:
    """The transient bar the long commands (train, the soak) draw on stderr: count and time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def logger(out: Any) -> Callable[[str], None]:
    """Progress lines as plain text: commands in them must survive copy and paste
    (no wrapping) and square brackets must not be read as rich markup."""
    return lambda text: out.print(text, soft_wrap=True, markup=False, highlight=False)


def model_path(model_dir: str | None) -> Path:
    """``--model`` as a path; None means the shipped model."""
    from mrm_edge.artifacts import default_model_dir

    return Path(model_dir) if model_dir else default_model_dir()


def folds(text: str | None) -> tuple[int, ...] | None:
    """``"1-8"``, ``"9"`` or ``"9,10"`` → the fold numbers; empty → None (the default)."""
    if not text:
        return None
    try:
        out: list[int] = []
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        return tuple(out)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected folds like 1-8 or 9 or 9,10") from None


def csv(text: str, cast: Callable[[str], Any] = str) -> list[Any]:
    """A comma-separated option value as a list (empty items left out)."""
    try:
        return [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a comma-separated list") from None


def batch_profile(text: str) -> tuple[int, int, int]:
    """``--batch MIN,OPT,MAX`` through the engine builder's own parser, so the CLI and the
    builder accept the same profiles."""
    from mrm_edge.export.tensorrt.plan import parse_batch_profile

    try:
        return parse_batch_profile(text)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def compute_targets(text: str | None) -> tuple[str, ...] | None:
    """``--compute-targets`` through the builder's parser; None keeps its defaults."""
    from mrm_edge.export.tensorrt.plan import parse_compute_targets

    if text is None:
        return None
    try:
        return parse_compute_targets(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--compute-targets") from None
