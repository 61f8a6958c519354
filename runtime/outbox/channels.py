"""The monitor's ``--sink`` values for hospital systems, turned into outbox channels:
``KIND:ARGUMENT`` (``hl7:HOST:PORT``, ``fhir:URL``, ...). Adding a receiver is one module with
its channel class (a ``from_spec(argument, options)`` classmethod) plus one
``register_channel`` line here; the module is imported on first use, so a monitor without
these sinks never imports an HL7 or FHIR library. docs/outbox.md."""

from __future__ import annotations

import importlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mrm_edge.runtime.outbox.codes import CodeTable
from mrm_edge.runtime.outbox.courier import Channel


@dataclass(frozen=True)
class ChannelOptions:
    """The result sinks' knobs; each kind takes the ones it uses."""

    ca_file: Path | None = None
    """The CA bundle that verifies the receiver's certificate (TLS kinds; None: the system's)."""
    timeout_s: float = 10.0
    """How long a send waits for the receiver's answer before it counts as no answer."""
    codes: CodeTable | None = None
    """The model's label codes (its card's dataset table and ``codes``); None: local only."""

    def tls_context(self) -> ssl.SSLContext:
        """A client context that verifies the receiver (hostname and chain)."""
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


ChannelFactory = Callable[[str, ChannelOptions], Channel]


@dataclass(frozen=True)
class ChannelKind:
    name: str
    usage: str
    load: Callable[[], ChannelFactory]


_KINDS: dict[str, ChannelKind] = {}


def register_channel(kind: ChannelKind) -> None:
    _KINDS[kind.name] = kind


def channel_help() -> str:
    return " | ".join(k.usage for k in _KINDS.values())


def make_channel(spec: str, options: ChannelOptions) -> Channel:
    """The channel ``spec`` names; ValueError (one line) for an unknown or malformed one."""
    name, sep, argument = spec.strip().partition(":")
    kind = _KINDS.get(name.lower())
    if kind is None or not sep or not argument:
        raise ValueError(f"--sink {spec!r}: unknown result sink, expected {channel_help()}")
    try:
        return kind.load()(argument, options)
    except ValueError as e:
        raise ValueError(f"--sink {spec!r}: {e}") from None


def _built_in(module: str, cls: str, **fixed: object) -> Callable[[], ChannelFactory]:
    """``cls.from_spec`` of ``mrm_edge.runtime.outbox.<module>`` (imported then), with
    ``fixed`` keyword arguments."""

    def load() -> ChannelFactory:
        factory = getattr(importlib.import_module(f"mrm_edge.runtime.outbox.{module}"), cls)
        return lambda argument, options: factory.from_spec(argument, options, **fixed)

    return load


register_channel(ChannelKind("hl7", "hl7:HOST:PORT", _built_in("hl7", "Hl7Channel", tls=False)))
register_channel(ChannelKind("hl7s", "hl7s:HOST:PORT", _built_in("hl7", "Hl7Channel", tls=True)))
register_channel(ChannelKind("fhir", "fhir:URL", _built_in("fhir", "FhirChannel")))
register_channel(
    ChannelKind("fhir-ndjson", "fhir-ndjson:DIR", _built_in("fhir", "FhirNdjsonChannel"))
)
