"""The trivial source: ``ticks:N`` is N synthetic patients of 12 s at 100 Hz.

What adding a source takes: this one module (a :class:`Source` with ``from_spec``) plus one
``register_source(SourceKind(...))`` line; ``--source ticks:N``, ``make_source`` and the CLI
help then reach it without another edit (tests/runtime/sources/test_registry.py).
"""

from __future__ import annotations

from mrm_edge.runtime.sources.base import ArraySource, SpecError
from mrm_edge.runtime.sources.registry import SourceOptions

from mrm_edge.data.synthetic import make_patients, synthesize


class TicksSource(ArraySource):
    """Test double: ``ticks:N`` replays N synthetic patients of 12 s at 100 Hz."""

    name = "ticks"

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> TicksSource:
        if not argument.isdigit():
            raise SpecError("expected ticks:N")
        patients = make_patients(int(argument), options.seed)
        return cls({p.patient_id: (synthesize(p, 12.0, 100).T, 100) for p in patients})
