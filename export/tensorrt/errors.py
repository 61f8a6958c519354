"""The one error type of an engine build (its own module: graph, plan and builder raise it)."""

from __future__ import annotations


class BuildError(RuntimeError):
    """The engine cannot be built; the one-line message says why."""
