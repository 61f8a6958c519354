"""A real MLLP receiver for the tests: the ``hl7`` library's asyncio server on 127.0.0.1 in a
thread of its own, which ACKs every message (``hl7.Message.create_ack``), or NAKs the ones
named in ``refuse`` (AE with the reason in MSA-3 and an ERR segment), answers the next
``late_acks`` messages ``delay_s`` late, drops the connection instead of answering the next
``lose_acks`` messages, and can be
killed (every connection aborted) and restarted on the same port. Everything that arrived
is kept, in order, as the library parsed it. Also the outbox's throughput measurement:
``python -m tests.runtime.outbox.mllp_listener [N]``."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import threading

import hl7
from hl7.mllp import start_hl7_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MllpListener:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.received: list[hl7.Message] = []
        self.refuse: dict[str, str] = {}  # MSH-10 -> the reason of its AE
        self.late_acks = 0
        self.delay_s = 0.0
        self.lose_acks = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def control_ids(self) -> list[str]:
        """MSH-10 of every message received, in arrival order (duplicates kept)."""
        return [str(m.segment("MSH")(10)) for m in list(self.received)]

    def start(self) -> MllpListener:
        async def start() -> asyncio.AbstractServer:
            return await start_hl7_server(
                self._client, "127.0.0.1", self.port, ssl=self.tls, encoding="utf-8"
            )

        self._server = self._call(start())
        return self

    def kill(self) -> None:
        """Stop listening and abort every connection (no FIN handshake, no pending ACK)."""

        async def kill() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()

        self._call(kill())

    def close(self) -> None:
        self.kill()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _client(self, reader, writer) -> None:
        self._writers.add(writer)
        try:
            while True:
                message = await reader.readmessage()
                self.received.append(message)
                if self.late_acks:
                    self.late_acks -= 1
                    await asyncio.sleep(self.delay_s)
                if self.lose_acks:
                    self.lose_acks -= 1
                    return
                writer.writemessage(self._ack(message))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _ack(self, message: hl7.Message) -> hl7.Message:
        reason = self.refuse.get(str(message.segment("MSH")(10)))
        if reason is None:
            return message.create_ack("AA")
        ack = message.create_ack("AE")
        ack.segment("MSA").assign_field(reason, 3)
        err = ack.create_segment([ack.create_field(["ERR"])])
        err.assign_field("207", 3, 1, 1)
        err.assign_field("Application internal error", 3, 1, 2)
        err.assign_field("E", 4)
        ack.append(err)
        return ack


def measure(count: int) -> float:
    """Messages/s from an outbox of ``count`` stored messages to this listener (ACKed)."""
    import tempfile
    import time
    from pathlib import Path

    from mrm_edge.runtime.outbox.courier import Courier
    from mrm_edge.runtime.outbox.hl7 import Hl7Channel
    from mrm_edge.runtime.outbox.store import Outbox

    from tests.runtime.outbox.test_hl7 import a_report

    listener = MllpListener().start()
    channel = Hl7Channel("127.0.0.1", listener.port)
    with tempfile.TemporaryDirectory() as d:
        outbox = Outbox(Path(d) / "outbox.sqlite", max_messages=count + 1)
        for i in range(count):
            report = a_report(f"bed-{i % 16}", segment=i)
            outbox.put(channel.name, report.message_id, report.stream_id, channel.compose(report))
        courier = Courier(outbox, channel, print)
        began = time.perf_counter()
        courier.start()
        while outbox.next_pending(channel.name) is not None:  # every one ACKed and deleted
            time.sleep(0.01)
        rate = count / (time.perf_counter() - began)
        courier.stop(5.0)
    listener.close()
    return rate


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"{n} HL7 messages, outbox to a loopback MLLP listener: {measure(n):.0f} messages/s")
