"""The outbox file: order per channel, bounds, set-aside refusals, the log, and what survives
a process that dies mid-run (a real SQLite file, a real killed subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mrm_edge.runtime.outbox.store import Outbox, OutboxError


def test_messages_leave_in_order_per_channel_and_once_per_id(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite")
    for i in range(3):
        assert box.put("hl7:a", f"m{i}", "s1", b"x" * i)
        assert box.put("fhir:b", f"m{i}", "s1", b"y")
    assert box.put("hl7:a", "m1", "s1", b"again")  # the same id: stored once
    assert [m.message_id for m in box.messages("hl7:a")] == ["m0", "m1", "m2"]
    first = box.next_pending("hl7:a")
    assert first is not None and first.message_id == "m0"
    box.delivered(first)
    assert box.next_pending("hl7:a").message_id == "m1"
    assert box.next_pending("fhir:b").message_id == "m0"
    assert box.history()[0][2:5] == ("hl7:a", "m0", "delivered")


def test_a_refused_message_is_set_aside_until_resent(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.put("c", "m0", "s", b"0")
    box.put("c", "m1", "s", b"1")
    m0 = box.next_pending("c")
    box.rejected(m0, "AE: unknown patient")
    assert box.next_pending("c").message_id == "m1"  # the rest goes on
    (kept,) = [m for m in box.messages("c") if m.state == "rejected"]
    assert kept.last_error == "AE: unknown patient"
    box.resend(kept, "patient registered")
    assert box.next_pending("c").message_id == "m0"  # back in its original place
    box.discard(box.next_pending("c"), "sent by hand")
    actions = [(row[3], row[4], row[5]) for row in box.history()]
    assert actions[:3] == [
        ("m0", "discarded", "sent by hand"),
        ("m0", "resend", "patient registered"),
        ("m0", "rejected", "AE: unknown patient"),
    ]


def test_a_full_outbox_refuses_and_frees_room_as_messages_leave(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_messages=2, max_bytes=10)
    assert box.put("c", "a", "s", b"12345")
    assert not box.put("c", "b", "s", b"123456")  # 11 bytes > 10
    assert box.put("c", "b", "s", b"123")
    assert not box.put("c", "c", "s", b"1")  # 2 messages
    box.delivered(box.next_pending("c"))
    assert box.put("c", "c", "s", b"1")
    # The running count survives reopening (kept by triggers in the file).
    again = Outbox(tmp_path / "o.sqlite", max_messages=2, max_bytes=10)
    assert not again.put("c", "d", "s", b"1")


def test_what_was_stored_survives_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from mrm_edge.runtime.outbox.store import Outbox
        box = Outbox({str(path)!r})
        for i in range(50):
            box.put("c", f"m{{i}}", "s", b"body")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert r.returncode == -9
    assert [m.message_id for m in Outbox(path).messages()] == [f"m{i}" for i in range(50)]


def test_an_unusable_path_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OutboxError, match=r"file/o\.sqlite: cannot open the outbox"):
        Outbox(tmp_path / "file" / "o.sqlite")
    (tmp_path / "garbage.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(OutboxError, match=r"garbage\.sqlite: cannot open the outbox"):
        Outbox(tmp_path / "garbage.sqlite")
