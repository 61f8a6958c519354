"""``mrm-edge outbox`` through real subprocesses on a real outbox file: what is waiting and
why, resending a refused message in its place, discarding with a logged reason, and one-line
errors for a missing file or message."""

from __future__ import annotations

from pathlib import Path

from mrm_edge.runtime.outbox.store import Outbox

from tests.cli.test_cli import assert_one_line_error, run


def test_show_resend_discard_and_log(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.put("hl7:10.0.0.5:2575", "id-a", "bed-1", b"MSH|...")
    box.put("hl7:10.0.0.5:2575", "id-b", "bed-2", b"MSH|...")
    box.rejected(box.next_pending("hl7:10.0.0.5:2575"), "AE: unknown patient")
    shown = run("outbox", "show", "--outbox", str(path))
    assert shown.returncode == 0, shown.stderr
    rows = shown.stdout.splitlines()
    assert "rejected" in rows[0] and "bed-1" in rows[0] and "(AE: unknown patient)" in rows[0]
    assert "pending" in rows[1] and "id-b" in rows[1]
    assert rows[-1] == f"2 message(s) in {path}"

    seq_a, seq_b = (m.seq for m in box.messages())
    assert run("outbox", "resend", str(seq_b), "--reason", "x", "--outbox", str(path)).returncode
    r = run("outbox", "resend", str(seq_a), "--reason", "patient registered", "--outbox", str(path))
    assert r.returncode == 0 and "back in line" in r.stdout
    assert Outbox(path).next_pending("hl7:10.0.0.5:2575").message_id == "id-a"  # first again
    r = run("outbox", "discard", str(seq_b), "--reason", "sent by phone", "--outbox", str(path))
    assert r.returncode == 0
    assert [m.message_id for m in Outbox(path).messages()] == ["id-a"]
    log = run("outbox", "log", "--outbox", str(path)).stdout.splitlines()
    assert "discarded" in log[0] and "sent by phone" in log[0]
    assert "resend" in log[1] and "patient registered" in log[1]
    assert "rejected" in log[2] and "AE: unknown patient" in log[2]


def test_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(
        run("outbox", "show", "--outbox", str(tmp_path / "none.sqlite")), "none.sqlite", "no outbox"
    )
    Outbox(tmp_path / "o.sqlite")
    assert_one_line_error(
        run("outbox", "discard", "7", "--reason", "r", "--outbox", str(tmp_path / "o.sqlite")),
        "no undelivered message 7",
    )
    (tmp_path / "junk.sqlite").write_bytes(b"not a database" * 100)
    assert_one_line_error(
        run("outbox", "show", "--outbox", str(tmp_path / "junk.sqlite")), "junk.sqlite"
    )
