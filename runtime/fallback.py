"""The monitor's backend chain: retry once, then move to the next backend that starts and
re-run the same batch there; a backend that can come back (it has ``reconnect_after_s`` and
``reachable()``, e.g. Triton) is the chain's *home*. In full: docs/monitor.md (Fallback).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from mrm_edge.runtime.backends.base import Backend
from mrm_edge.runtime.sinks.base import BackendSwitch

from mrm_edge.errors import first_line

if TYPE_CHECKING:
    from mrm_edge.runtime.selection import Candidate


def fallback_label(entry: Backend | Candidate) -> str:
    """How a fallback is named in the knobs and the ``fallback:`` line."""
    if isinstance(entry, Backend):
        return f"{entry.name} {entry.precision}"
    return entry.label


@dataclass(frozen=True)
class BatchOutcome:
    """One batch through the chain: ``probabilities`` ([n, labels]) or, when every
    backend failed it, None and the rejection ``reason``; ``spent_s`` is backend time only
    (activating a fallback is not inference)."""

    probabilities: np.ndarray | None
    reason: str
    spent_s: float


class BackendChain:
    """The backend running now and where to go when it fails: ``fallbacks`` are inactive
    backends or selection ``Candidate``s (built only when needed); ``release()`` deactivates
    every backend the chain activated. ``on_switch`` hears of each switch."""

    def __init__(
        self,
        backend: Backend,
        fallbacks: Sequence[Backend | Candidate] = (),
        *,
        outputs: int,
        on_switch: Callable[[BackendSwitch], None] = lambda switch: None,
    ) -> None:
        self.backend = backend
        """The backend running now (a fallback after a switch)."""
        self.fallbacks: deque[Backend | Candidate] = deque(fallbacks)
        self.outputs = outputs
        self.on_switch = on_switch
        self._chained = bool(self.fallbacks)  # rejection reasons then say none is left
        self._owned: list[Backend] = []  # backends this chain activated: released at the end
        self._no_backend: str | None = None  # set when no backend could be (re)started
        # A backend that may come back (a remote server) is switched back to when it does.
        self._home = backend if getattr(backend, "reconnect_after_s", None) is not None else None
        self._next_probe = 0.0
        self._busy = threading.Lock()  # held by infer(): see ``in_use``

    @property
    def in_use(self) -> bool:
        """Whether a batch is inside ``infer()`` now: after a run only when the monitor
        abandoned a stuck inference, which may still be inside a backend's native call."""
        return self._busy.locked()

    def start(self) -> None:
        """Activate the first backend unless its owner already did (it then stays theirs)."""
        if not self.backend.is_active:
            self.backend.activate()
            self._owned.append(self.backend)

    def release(self) -> None:
        """Deactivate every backend this chain activated, unless a batch is still inside
        one (``in_use``): a session freed under a running native call crashes the process,
        where leaving it to the process's end costs nothing."""
        if self.in_use:
            return
        for be in self._owned:
            with contextlib.suppress(Exception):
                be.deactivate()

    def infer(self, x: np.ndarray) -> BatchOutcome:
        """Run batch ``x`` here, falling back along the chain until a backend gives it a
        result or none is left."""
        with self._busy:
            return self._infer(x)

    def _infer(self, x: np.ndarray) -> BatchOutcome:
        n = len(x)
        spent = 0.0
        self._maybe_return()
        while True:
            if self._no_backend is not None:
                return BatchOutcome(None, f"backend error: {self._no_backend}", spent)
            p, error, dt = self._attempt(x, n)
            spent += dt
            if p is not None:
                return BatchOutcome(p, "", spent)
            error_text = first_line(error) if error else "no output"
            not_started = self._fall_back(error_text, n)
            if not_started is None:
                continue  # a fallback is active: the same batch again, there
            reason = f"backend error: {error_text}"
            if self._chained:
                reason += f"; no fallback left{not_started}"
            return BatchOutcome(None, reason, spent)

    def _attempt(
        self, x: np.ndarray, n: int
    ) -> tuple[np.ndarray | None, BaseException | None, float]:
        """Run ``x`` on the current backend, retried once (a transient failure should not
        cost windows): (probabilities or None, the last error, seconds spent)."""
        t0 = time.perf_counter()
        error: BaseException | None = None
        for _try in range(2):
            try:
                p = np.asarray(self.backend.infer(x))
                if p.shape != (n, self.outputs):
                    raise ValueError(f"output shape {p.shape}, expected ({n}, {self.outputs})")
                return p, None, time.perf_counter() - t0
            except Exception as e:
                error = e
        return None, error, time.perf_counter() - t0

    def _fall_back(self, error: str, windows: int) -> str | None:
        """The current backend failed a batch twice: move to the next fallback that starts.
        None when one is active now; otherwise a note for the rejection reason (which
        fallbacks failed to start; "" when there were none to try)."""
        if not self.fallbacks:
            return ""
        old = self.backend
        old_desc = old.describe()
        with contextlib.suppress(Exception):  # release first: the next may need its memory
            old.deactivate()
        skipped: list[str] = []
        while self.fallbacks:
            entry = self.fallbacks.popleft()
            try:
                be = entry if isinstance(entry, Backend) else entry.make()
                be.activate()
            except Exception as e:
                skipped.append(f"{fallback_label(entry)}: {first_line(e)}")
                continue
            self._owned.append(be)
            self.backend = be
            self.on_switch(BackendSwitch(old_desc, be.describe(), error, tuple(skipped), windows))
            return None
        return self._restart(old, old_desc, f" (failed to start: {'; '.join(skipped)})")

    def _restart(self, old: Backend, old_desc: str, note: str) -> str:
        """No fallback started: the failed backend is the only one left; restart it so that
        later batches can try it again (the failure may have been transient after all)."""
        try:
            old.activate()
        except Exception as e:
            self._no_backend = (
                f"no backend left ({old_desc} could not restart: {first_line(e)}){note}"
            )
            return note
        if old not in self._owned:
            self._owned.append(old)
        return note

    def _maybe_return(self) -> None:
        """Switch back to the home backend when it answers again (see the module docstring);
        checked at most every ``reconnect_after_s``."""
        home = self._home
        if home is None or (self.backend is home and self._no_backend is None):
            return
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + float(home.reconnect_after_s)  # type: ignore[attr-defined]
        if not home.reachable():  # type: ignore[attr-defined]
            return
        try:
            home.activate()
        except Exception:
            return  # answers but cannot run yet (loading, or another model): try later
        current = self.backend
        from_desc = "no backend" if self._no_backend is not None else current.describe()
        if current is not home:
            with contextlib.suppress(Exception):
                current.deactivate()
            self.fallbacks.appendleft(current)  # first in line again at the next failure
        if home not in self._owned:
            self._owned.append(home)
        self.backend, self._no_backend = home, None
        self.on_switch(BackendSwitch(from_desc, home.describe(), "server back: reconnected"))
