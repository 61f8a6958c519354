"""Delivery of one channel's messages from the outbox, in order, on a thread of its own: sent,
then deleted only once the receiver acknowledged it; a receiver's refusal sets the message
aside with the reason (never retried blindly); no answer (refused connection, timeout, a
dropped link) is retried with exponential back-off, the message staying first in line. A
channel is one receiver and its wire format (``Channel``); what it guarantees:
docs/outbox.md."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from mrm_edge.runtime.outbox.report import ResultReport
from mrm_edge.runtime.outbox.store import Message, Outbox

from mrm_edge.errors import one_line

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


class Channel(Protocol):
    """One receiver and its format: ``name`` keys its messages in the outbox (e.g.
    ``hl7:10.0.0.5:2575``); ``compose`` turns a report into the message's bytes;
    ``send`` delivers one and returns None once acknowledged or the receiver's reason for
    refusing it, and raises (OSError, TimeoutError, ...) when no answer came; ``close``
    drops any connection (the next ``send`` reconnects)."""

    name: str

    def compose(self, report: ResultReport) -> bytes: ...

    def send(self, message: Message) -> str | None: ...

    def close(self) -> None: ...


class Courier:
    """Sends ``channel``'s pending messages from ``outbox`` until stopped; ``notify`` gets
    one line when the receiver becomes unreachable, when it is back, and for each refusal."""

    def __init__(
        self,
        outbox: Outbox,
        channel: Channel,
        notify: Callable[[str], None],
        backoff_first_s: float = BACKOFF_FIRST_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        poll_s: float = 0.2,
    ) -> None:
        self.outbox = outbox
        self.channel = channel
        self.notify = notify
        self.backoff_first_s = backoff_first_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.sent = 0
        self.refused = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_until_empty = False
        self._thread = threading.Thread(target=self._loop, name=f"courier-{channel.name}")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A message was stored: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, drain_s: float) -> None:
        """Deliver what is pending for up to ``drain_s`` seconds, then stop (what is left
        stays in the outbox for the next run)."""
        self._drain_until_empty = True
        self._wake.set()
        self._thread.join(drain_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(self.backoff_max_s + 5.0)
        self.channel.close()
        self.outbox.close()

    def _loop(self) -> None:
        backoff = self.backoff_first_s
        outage = False
        while not self._stop.is_set():
            msg = self.outbox.next_pending(self.channel.name)
            if msg is None:
                if self._drain_until_empty:
                    break
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            try:
                reason = self.channel.send(msg)
            except Exception as e:  # no answer: the message stays first in line
                error = one_line(e)
                self.outbox.attempt_failed(msg, error)
                self.channel.close()
                if not outage:
                    outage = True
                    self.notify(f"{self.channel.name}: receiver unreachable ({error}); retrying")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            if outage:
                outage = False
                self.notify(f"{self.channel.name}: receiver reachable again; delivering")
            backoff = self.backoff_first_s
            if reason is None:
                self.outbox.delivered(msg)
                self.sent += 1
            else:
                self.outbox.rejected(msg, reason)
                self.refused += 1
                self.notify(
                    f"{self.channel.name}: message {msg.message_id} of stream {msg.stream_id} "
                    f"refused by the receiver ({reason}); kept in the outbox"
                )
        self.outbox.close()
