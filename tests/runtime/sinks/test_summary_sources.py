"""The summary counts source problems by kind (tls, ownership, limit, protocol,
insecure) and the JSONL `source` line carries the kind: through the real accounting."""

from __future__ import annotations

import json
from pathlib import Path

from mrm_edge.runtime.sinks.jsonl import JsonlSink
from mrm_edge.runtime.sinks.summary import Tally
from mrm_edge.runtime.sources.base import SourceProblem


def test_source_problems_are_counted_by_kind_and_logged_with_it(tmp_path: Path) -> None:
    tally, out = Tally(), tmp_path / "events.jsonl"
    sink = JsonlSink(out)
    problems = [
        SourceProblem("tls 127.0.0.1:1", "TLS handshake refused: x", "tls"),
        SourceProblem("tls 127.0.0.1:2", "refused: stream id 'a' belongs to 'x'", "ownership"),
        SourceProblem("tls 127.0.0.1:3", "TLS handshake refused: y", "tls"),
        SourceProblem("tcp 127.0.0.1:4", "bad magic"),  # the default kind
    ]
    for p in problems:
        tally.source_problem(p.kind)
        sink.source_problem(p)
    s = tally.summary(model="m", backend="b", backend_reason="r", source="s", stopped_by="t")
    assert s.source_problems == 4
    assert s.source_problems_by_kind == {"tls": 2, "ownership": 1, "protocol": 1}
    assert "source problems: 4 (outside any stream: tls 2, ownership 1, protocol 1)" in s.lines()
    assert s.to_dict()["source_problems_by_kind"]["tls"] == 2
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [d["kind"] for d in lines] == ["tls", "ownership", "tls", "protocol"]
    assert lines[1]["reason"] == "refused: stream id 'a' belongs to 'x'"
