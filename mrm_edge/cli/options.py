"""Click pieces shared by several commands: ``--model`` (most), the runtime knobs
(``monitor``, ``bench``, and ``python -m benchmarks.soak``) and :func:`user_errors` (all):
one definition, so they mean and behave the same everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mrm_edge.card import ModelCardError
from mrm_edge.data.errors import DataError
from mrm_edge.errors import first_line
from mrm_edge.runtime.backends.base import BackendUnavailable
from mrm_edge.runtime.backends.registry import (
    PRECISIONS,
    backend_choices,
    backend_target_forms,
    get_remote_spec,
)

F = TypeVar("F", bound=Callable[..., object])


class BackendChoice(click.Choice):
    """``--backend``'s choices: ``auto`` and every registered backend family, read from the
    backend registry each time they are shown or checked (a backend registered after this
    module was imported is selectable too)."""

    def __init__(self) -> None:
        super().__init__(backend_choices())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return backend_choices()

    @choices.setter
    def choices(self, value: Any) -> None:
        pass  # click.Choice.__init__ assigns a fixed tuple: the registry's list is live

    def get_metavar(self, param: Any, ctx: Any = None) -> str:
        return "[" + "|".join((*backend_choices(), *backend_target_forms())) + "]"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        """A plain choice, or a remote backend's ``family:ADDRESS`` (``triton:HOST:PORT``),
        checked by that backend's parser (one-line error for a malformed address)."""
        family, _, text = str(value).partition(":")
        spec = get_remote_spec(family) if text else None
        if spec is not None and spec.parse_target is not None:
            try:
                spec.parse_target(text)
            except ValueError as e:
                self.fail(str(e), param, ctx)
            return str(value)
        return super().convert(value, param, ctx)


#: What a user can fix (bad input, an unusable setup): shown as one ``Error:`` line, never a
#: traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    ModelCardError,
    BackendUnavailable,
    ValueError,
    OSError,
)


def option_group(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator applying ``options`` in the order listed (as ``--help`` shows them)."""

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn :data:`USER_ERRORS` raised by a command into a one-line ``click.ClickException``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            raise click.ClickException(first_line(e, with_type=False)) from e

    return wrapper


def model_option(what: str = "Model", must_exist: bool = True) -> Callable[[F], F]:
    """``--model DIR`` (into ``model_dir``; None means the shipped model). ``must_exist=False``
    leaves a missing directory to the model loader, whose one-line error says what a model
    directory must hold (the runtime commands use that)."""
    return click.option(
        "--model",
        "model_dir",
        type=click.Path(exists=must_exist, file_okay=False),
        default=None,
        help=f"{what} directory (default: the shipped model).",
    )


def card_tuning_option() -> Callable[[F], F]:
    """``--accept-card-tuning`` (monitor, predict, bench, serve): the one opt-in that lets a
    card whose thresholds / alarm labels changed after export load (``DeployedModel.load``)."""
    from mrm_edge.runtime.model import ACCEPT_TUNING_OPTION

    return click.option(
        ACCEPT_TUNING_OPTION,
        "accept_card_tuning",
        is_flag=True,
        help="Run a card.json whose thresholds or alarm_labels were changed after export "
        "(a deliberate re-tune; each change is printed at start and written to the event "
        "log's start line). Labels, rate, window, leads, normalisation and architecture "
        "changes are always refused: re-export.",
    )


def runtime_options(max_batch: int = 32) -> Callable[[F], F]:
    """``--backend``, ``--precision``, ``--max-batch`` and ``--max-delay`` (the batcher's two
    knobs, as in Triton's dynamic batcher)."""
    options = [
        click.option("--backend", type=BackendChoice(), default="auto", show_default=True),
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
    return option_group(options)
