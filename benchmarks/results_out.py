"""What results out to hospital systems cost (issue 23), on loopback receivers::

    python -m benchmarks.results_out outbox --messages 2000
    python -m benchmarks.results_out monitor --streams 16 --seconds 60 --rounds 3

1. **outbox**: ``--messages`` HL7 ORU^R01 messages stored in a fresh outbox, then delivered
   by the courier to a real MLLP receiver (the ``hl7`` library's asyncio server, the tests'
   ``MllpListener``), each ACKed and deleted: messages/s from the first send to the last
   deletion. The receiver (a parse and an ACK per message in Python) is part of the figure.
2. **monitor**: the monitor's classified windows/s at max speed on ``--streams`` synthetic
   patients of ``--seconds`` each (the shipped model, ONNX Runtime CPU FP32), with no result
   sink against both an HL7 sink and a FHIR sink (per record, to the tests' loopback MLLP
   listener and FHIR endpoint, which validates every Bundle), the two interleaved for
   ``--rounds`` rounds so drift hits both alike. The target: within the run-to-run noise.

The receivers are the tests' (``tests/runtime/outbox``): run from a checkout with the
``hl7`` and ``fhir`` extras. One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def outbox_rate(count: int) -> dict[str, Any]:
    """Messages/s from an outbox of ``count`` stored messages to a loopback MLLP listener."""
    from mrm_edge.runtime.outbox.courier import Courier
    from mrm_edge.runtime.outbox.hl7 import Hl7Channel
    from mrm_edge.runtime.outbox.store import Outbox

    from tests.runtime.outbox.mllp_listener import MllpListener
    from tests.runtime.outbox.test_hl7 import a_report

    listener = MllpListener().start()
    channel = Hl7Channel("127.0.0.1", listener.port)
    try:
        with tempfile.TemporaryDirectory() as d:
            outbox = Outbox(Path(d) / "outbox.sqlite", max_messages=count + 1)
            began = time.perf_counter()
            for i in range(count):
                report = a_report(f"bed-{i % 16}", segment=i)
                body = channel.compose(report)
                outbox.put(channel.name, report.message_id, report.stream_id, body)
            stored_s = time.perf_counter() - began
            courier = Courier(outbox, channel, lambda line: None)
            began = time.perf_counter()
            courier.start()
            while outbox.next_pending(channel.name) is not None:  # every one ACKed, deleted
                time.sleep(0.01)
            sent_s = time.perf_counter() - began
            courier.stop(5.0)
    finally:
        listener.close()
    received = len(set(listener.control_ids()))
    return {
        "measure": "outbox",
        "messages": count,
        "received": received,
        "stored_per_s": round(count / stored_s, 1),
        "delivered_per_s": round(count / sent_s, 1),
    }


def monitor_rate(streams: int, seconds: float, with_sinks: bool) -> dict[str, Any]:
    """Classified windows/s at max speed, with or without the HL7 and FHIR sinks."""
    from mrm_edge.runtime.app import open_monitor
    from mrm_edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from mrm_edge.runtime.config import MonitorConfig
    from mrm_edge.runtime.model import DeployedModel
    from mrm_edge.runtime.outbox.channels import ChannelOptions, make_channel
    from mrm_edge.runtime.outbox.store import Outbox
    from mrm_edge.runtime.sinks.outbox import OutboxSink
    from mrm_edge.runtime.sources.synthetic import SyntheticSource

    from mrm_edge.cli.common import model_path
    from tests.runtime.outbox.fhir_server import FhirServer
    from tests.runtime.outbox.mllp_listener import MllpListener

    model = DeployedModel.load(model_path(None))
    backend = OnnxRuntimeBackend(model.onnx["fp32"].path, providers=["CPUExecutionProvider"])
    source = SyntheticSource(streams, seconds=seconds, speed=None)
    listener = MllpListener().start()
    with tempfile.TemporaryDirectory() as d, FhirServer() as fhir, backend:
        sinks = []
        if with_sinks:
            outbox = Outbox(Path(d) / "outbox.sqlite")
            for spec in (f"hl7:127.0.0.1:{listener.port}", f"fhir:{fhir.url}"):
                sinks.append(OutboxSink(outbox, make_channel(spec, ChannelOptions())))
        with open_monitor(model, source, MonitorConfig(), backend, sinks=sinks) as monitor:
            summary = monitor.run()
        delivered = len(set(listener.control_ids())), len(fhir.resources("DiagnosticReport"))
    listener.close()
    return {
        "measure": "monitor",
        "sinks": "hl7+fhir" if with_sinks else "none",
        "streams": streams,
        "windows": summary.classified,
        "windows_per_s": round(summary.throughput_wps, 1),
        "delivered_hl7_fhir": list(delivered) if with_sinks else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.results_out", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    out = sub.add_parser("outbox", help="outbox throughput to a loopback MLLP receiver")
    out.add_argument("--messages", type=int, default=2000)
    mon = sub.add_parser("monitor", help="windows/s with both result sinks against none")
    mon.add_argument("--streams", type=int, default=16)
    mon.add_argument("--seconds", type=float, default=60.0)
    mon.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "outbox":
        print(json.dumps(outbox_rate(args.messages)))
        return
    rates: dict[str, list[float]] = {"none": [], "hl7+fhir": []}
    for _ in range(args.rounds):
        for with_sinks in (False, True):
            row = monitor_rate(args.streams, args.seconds, with_sinks)
            rates[row["sinks"]].append(row["windows_per_s"])
            print(json.dumps(row), flush=True)
    medians = {k: statistics.median(v) for k, v in rates.items()}
    spread = {k: round(max(v) - min(v), 1) for k, v in rates.items()}
    print(json.dumps({"measure": "monitor", "median_windows_per_s": medians, "spread": spread}))


if __name__ == "__main__":
    main()
