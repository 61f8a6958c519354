"""A made-up machine for backend selection: this machine's facts, probed once for the
suite, with the parts a test states replaced (``machine(ort_providers=(...))``). A GPU the
machine lacks is described by probing the TensorRT / CUDA doubles instead:
``probe_machine(FakeTensorRT(...), FakeCudaRuntime(...))``."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from mrm_edge.runtime.facts import MachineFacts, probe_machine


@functools.cache
def _here() -> MachineFacts:
    return probe_machine()


def machine(**stated: Any) -> MachineFacts:
    """This machine's facts with ``stated`` fields replaced (``MachineFacts``'s names)."""
    return replace(_here(), **stated)
