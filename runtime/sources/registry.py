"""The monitor's ``--source`` values, turned into sources: ``KIND`` or ``KIND:ARGUMENT``.

Adding a source is one new module with its ``Source`` subclass and a ``from_spec(argument,
options)`` classmethod, plus one ``register_source`` line (here for the built-in kinds;
anywhere for a caller's own, e.g. a test). The CLI's ``--source`` help and its messages
come from the registrations. A kind's class is loaded on first use, so e.g. a tcp monitor
never imports wfdb. The kinds: docs/monitor.md#sources."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mrm_edge.runtime.sources.base import DEFAULT_STALL_TIMEOUT_S, Source, SpecError

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.network import NetworkOptions


@dataclass(frozen=True)
class SourceOptions:
    """The monitor's source knobs; each kind takes the ones it uses."""

    streams: int = 4  # synthetic patients
    speed: float | None = 1.0  # paces wfdb and synthetic (live devices pace themselves)
    loop: bool = False  # wfdb
    seed: int = 0  # synthetic
    stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S  # tcp, stdin: None never
    min_seconds: float | None = None  # wfdb: shorter records are refused (the model's window)
    network: NetworkOptions | None = None  # tcp: TLS, allow-list, limits (network.py)


SourceFactory = Callable[[str, SourceOptions], Source]  # (argument, options) -> the source


@dataclass(frozen=True)
class SourceKind:
    """One ``--source`` kind: its ``name``, how it is written (``usage``, e.g.
    ``tcp:HOST:PORT``), whether it takes an argument after the colon, and ``load``, which
    returns its factory (importing the kind's module only then)."""

    name: str
    usage: str
    load: Callable[[], SourceFactory]
    takes_argument: bool = False


_KINDS: dict[str, SourceKind] = {}


def register_source(kind: SourceKind) -> None:
    """Make ``kind`` a ``--source`` value (a second registration of a name replaces it)."""
    _KINDS[kind.name.lower()] = kind


def source_specs() -> str:
    """The registered forms for a message: "synthetic, wfdb:PATH[,PATH...], ... or stdin"."""
    usages = [k.usage for k in _KINDS.values()]
    return usages[0] if len(usages) == 1 else f"{', '.join(usages[:-1])} or {usages[-1]}"


def source_help() -> str:
    """The registered forms for ``--source``'s help: "synthetic | wfdb:PATH[,PATH...] | ..."."""
    return " | ".join(k.usage for k in _KINDS.values())


def make_source(spec: str, options: SourceOptions | None = None) -> Source:
    """The source ``spec`` names with ``options`` (default: the defaults); ValueError (one
    line) for an unknown or malformed spec."""
    name, sep, argument = spec.strip().partition(":")
    kind = _KINDS.get(name.lower())
    if kind is None or (sep and not kind.takes_argument):
        raise ValueError(f"--source {spec!r}: unknown source, expected {source_specs()}")
    try:
        return kind.load()(argument, options or SourceOptions())
    except SpecError as e:
        raise ValueError(f"--source {spec!r}: {e}") from None


def _built_in(module: str, cls: str) -> Callable[[], SourceFactory]:
    """The ``from_spec`` of ``cls`` in ``mrm_edge.runtime.sources.<module>``, imported then."""
    return lambda: (
        getattr(importlib.import_module(f"mrm_edge.runtime.sources.{module}"), cls).from_spec
    )


register_source(SourceKind("synthetic", "synthetic", _built_in("synthetic", "SyntheticSource")))
register_source(
    SourceKind(
        "wfdb", "wfdb:PATH[,PATH...]", _built_in("wfdb", "WfdbReplaySource"), takes_argument=True
    )
)
register_source(
    SourceKind("tcp", "tcp:HOST:PORT", _built_in("tcp", "TcpSource"), takes_argument=True)
)
register_source(SourceKind("stdin", "stdin", _built_in("stdin", "StdinSource")))
register_source(
    SourceKind("lsl", "lsl:[PROP=]VALUE", _built_in("lsl", "LslSource"), takes_argument=True)
)
register_source(
    SourceKind("watch", "watch:DIR", _built_in("watch", "WatchSource"), takes_argument=True)
)
