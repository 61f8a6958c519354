"""The watched inbox (``--source watch:DIR``: watch.py, arrivals.py, ledger.py) on real
files: the settle and temp-name rules, arrival order, WFDB companions, the ledger across
restarts, hostile files and folders, moves that fail, what a file says of its origin. The
acceptance run (200 files through a real ``mrm-edge monitor``, restarted in the middle) is
in test_inbox_acceptance.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from mrm_edge.runtime.sources import watch
from mrm_edge.runtime.sources.arrivals import is_temp_name
from mrm_edge.runtime.sources.base import Chunk, Event, SourceProblem, StreamEnd
from mrm_edge.runtime.sources.ledger import Ledger
from mrm_edge.runtime.sources.registry import make_source
from mrm_edge.runtime.sources.watch import WatchSource

from mrm_edge.records import read_recording

pytestmark = pytest.mark.realdata

FAST = {"settle_s": 0.3, "poll_s": 0.05}
TIMEOUT_S = 20.0


class Driver:
    """Runs a source on a thread as the engine would: each StreamEnd is reported back
    (``stream_finished``) unless ``finish`` is False (a monitor killed mid-file)."""

    def __init__(self, src: WatchSource, finish: bool = True) -> None:
        self.src, self.finish = src, finish
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for ev in self.src:
                self.events.append(ev)
                if isinstance(ev, StreamEnd) and self.finish:
                    self.src.stream_finished(ev.stream_id, ev.reason, 0)
        except BaseException as e:
            self.error = e

    def wait(self, condition: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not condition():
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def stop(self) -> None:
        self.src.close()
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive()

    @property
    def ends(self) -> list[str]:
        return [e.stream_id for e in self.events if isinstance(e, StreamEnd)]

    @property
    def problems(self) -> list[SourceProblem]:
        return [e for e in self.events if isinstance(e, SourceProblem)]

    def signal(self, sid: str) -> np.ndarray:
        return np.concatenate([e.samples for e in self.events if isinstance(e, Chunk)
                               and e.stream_id == sid])  # fmt: skip


def ptbxl(root: Path, k: int) -> tuple[Path, Path]:
    header = root / f"records100/00000/{k:05d}_lr.hea"
    return header, header.with_suffix(".dat")


def put(inbox: Path, *files: Path, name: str | None = None) -> None:
    """Copy ``files`` in "write, then rename" (a ``.part`` name while written)."""
    for f in files:
        tmp = inbox / f"{name or f.name}.part"
        shutil.copyfile(f, tmp)
        os.rename(tmp, inbox / (name or f.name))


def accounted(inbox: Path) -> list[str]:
    """Every file under done/ and failed/ (relative), reason files left out."""
    return sorted(
        str(p.relative_to(inbox))
        for sub in (watch.DONE, watch.FAILED)
        for p in (inbox / sub).rglob("*")
        if not p.is_dir() and not p.name.endswith(".reason")
    )


def test_temp_names() -> None:
    assert all(map(is_temp_name, [".x.hea", "a.mat.tmp", "a.PART", "b.partial", ".~lock"]))
    assert not any(map(is_temp_name, ["a.mat", "00001_lr.hea", "x.partial.mat"]))


def test_each_record_once_in_arrival_order_read_whole_then_moved_to_done(
    tmp_path: Path, ptbxl_root: Path, cpsc_root: Path
) -> None:
    """PTB-XL WFDB records (header and signal file) and a CPSC .mat; one written slowly in
    place under its final name (not read until settled), the rest "write, then rename"."""
    src = WatchSource(tmp_path, **FAST)
    run = Driver(src)
    h2, d2 = ptbxl(ptbxl_root, 2)
    put(tmp_path, d2, h2)
    run.wait(lambda: len(run.ends) == 1, "the first record")
    put(tmp_path, cpsc_root / "A1981.mat")
    run.wait(lambda: len(run.ends) == 2, "the second record")
    h1, d1 = ptbxl(ptbxl_root, 1)
    data = d1.read_bytes()
    with open(tmp_path / d1.name, "wb") as f:  # a slow writer: pauses under the settle time
        for i in range(0, len(data), len(data) // 8):
            f.write(data[i : i + len(data) // 8])
            f.flush()
            time.sleep(0.1)
    put(tmp_path, h1)
    run.wait(lambda: len(run.ends) == 3, "the third record")
    run.stop()
    assert [s.split("-")[0] for s in run.ends] == ["00002_lr", "A1981", "00001_lr"]
    for sid, path in zip(run.ends, [h2, cpsc_root / "A1981.mat", h1], strict=True):
        np.testing.assert_array_equal(run.signal(sid), read_recording(path).signal.T)
    assert accounted(tmp_path) == sorted(
        f"done/{f.name}" for f in (h1, d1, h2, d2, cpsc_root / "A1981.mat")
    )
    assert not run.problems
    rows = Ledger(tmp_path / watch.STATE / "ledger.sqlite").all()
    names = [h2.name, "A1981.mat", h1.name]
    assert [(r.name, r.state, r.moved, r.stream) for r in rows] == [
        (n, "done", True, sid) for n, sid in zip(names, run.ends, strict=True)
    ]
    assert [len(r.files) for r in rows] == [2, 1, 2]


def test_temp_names_and_unsettled_files_are_never_read(tmp_path: Path, cpsc_root: Path) -> None:
    (tmp_path / "a.mat.part").write_bytes((cpsc_root / "A1980.mat").read_bytes())
    (tmp_path / ".hidden.mat").write_bytes((cpsc_root / "A1980.mat").read_bytes())
    src = WatchSource(tmp_path, settle_s=0.3, poll_s=0.05)
    run = Driver(src)
    growing = tmp_path / "growing.mat"
    for _ in range(12):  # keeps changing for 1.2 s: never settled
        with growing.open("ab") as f:
            f.write(b"\0" * 100)
        time.sleep(0.1)
    assert run.events == []
    os.rename(tmp_path / "a.mat.part", tmp_path / "a.mat")
    run.wait(lambda: run.ends, "the renamed file")
    run.wait(lambda: run.problems, "the growing file, once settled, refused")
    run.stop()
    assert run.ends[0].startswith("a-")
    assert (tmp_path / ".hidden.mat").exists()
    assert accounted(tmp_path) == ["done/a.mat", "failed/growing.mat"]


def test_a_files_patient_id_and_acquisition_time_are_its_streams_origin(
    tmp_path: Path, ptbxl_root: Path
) -> None:
    """An SCP-ECG file carries a patient id, an EDF+ file a start time (each written from a
    PTB-XL record by the format's test writer): what the outbox names as subject and time."""
    from tests.records.edf_writer import write_edf
    from tests.records.scp_writer import write_scp

    rec = read_recording(ptbxl(ptbxl_root, 7)[0])
    staged = tmp_path / "staged"
    staged.mkdir()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = WatchSource(inbox, **FAST)
    run = Driver(src)
    for write, name in ((write_scp, "a.scp"), (write_edf, "b.edf")):
        put(inbox, write(staged / name, rec))
        run.wait(lambda n=name: (inbox / "done" / n).exists(), name)
    run.stop()
    scp, edf = (read_recording(inbox / "done" / n) for n in ("a.scp", "b.edf"))
    assert scp.patient_id and edf.start_time  # what the files state
    first, second = (src.origin(sid) for sid in run.ends)
    assert first.subject == scp.patient_id
    assert second.started_at == datetime.fromisoformat(edf.start_time)
    assert src.origin("no such stream") is None


HOSTILE = {
    # name: (how it is made, what its one-line reason says)
    "garbage.mat": (lambda d, r: (d / "garbage.mat").write_bytes(os.urandom(4000)), ".mat"),
    "empty.hea": (lambda d, r: (d / "empty.hea").write_bytes(b""), "empty WFDB header"),
    "notes.txt": (lambda d, r: (d / "notes.txt").write_text("hello\n"), "not an ECG file"),
    "short.hea": (None, "short.hea"),  # a truncated .dat beside its header
    "lone.dat": (None, "no header (.hea) in the inbox named"),
    "escape.hea": (None, "'../outside.dat' is not a file of the inbox"),
    "link.mat": (None, "symbolic link"),
    "dir.hea": (lambda d, r: (d / "dir.hea").mkdir(), "not a regular file"),
    "big.mat": (None, "over the inbox's limit"),
    "copy.mat": (None, "same content as A1982.mat (done earlier)"),
    "tiny.hea": (None, "the model needs at least 10.0 s"),
}


def make_hostile(inbox: Path, ptbxl_root: Path, cpsc_root: Path, outside: Path) -> None:
    for make, _ in HOSTILE.values():
        if make is not None:
            make(inbox, None)
    h, d = ptbxl(ptbxl_root, 3)
    (inbox / "short.hea").write_text(h.read_text().replace("00003_lr", "short"))
    (inbox / "short.dat").write_bytes(d.read_bytes()[:1000])
    (inbox / "lone.dat").write_bytes(d.read_bytes())
    (inbox / "escape.hea").write_text(h.read_text().replace("00003_lr.dat", "../outside.dat"))
    (outside / "secret.mat").write_bytes((cpsc_root / "A1983.mat").read_bytes())
    (inbox / "link.mat").symlink_to(outside / "secret.mat")
    (inbox / "big.mat").write_bytes(b"\0" * 3_000_000)
    shutil.copyfile(cpsc_root / "A1982.mat", inbox / "copy.mat")
    h4, d4 = ptbxl(ptbxl_root, 4)  # 10 s at 100 Hz, cut to 2 s
    (inbox / "tiny.hea").write_text(
        h4.read_text().replace("00004_lr", "tiny").replace(" 100 1000\n", " 100 200\n", 1)
    )
    (inbox / "tiny.dat").write_bytes(d4.read_bytes()[: 200 * 12 * 2])


def test_hostile_files_go_to_failed_with_one_line_each_and_the_monitor_goes_on(
    tmp_path: Path, ptbxl_root: Path, cpsc_root: Path
) -> None:
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir(), outside.mkdir()
    src = WatchSource(inbox, orphan_s=0.5, max_bytes=2_500_000, min_seconds=10.0, **FAST)
    run = Driver(src)
    put(inbox, cpsc_root / "A1982.mat")
    run.wait(lambda: run.ends, "the good file")
    make_hostile(inbox, ptbxl_root, cpsc_root, outside)
    h5, d5 = ptbxl(ptbxl_root, 5)
    put(inbox, d5, h5)  # a good record after them all
    run.wait(lambda: len(run.problems) >= len(HOSTILE) and len(run.ends) == 2, "all of them")
    run.stop()
    reasons = {p.where.rsplit("/", 1)[1]: p.reason for p in run.problems}
    assert set(reasons) == set(HOSTILE)
    for name, (_, expect) in HOSTILE.items():
        reason = reasons[name]
        assert expect in reason and "\n" not in reason, (name, reason)
        written = (inbox / "failed" / f"{name}.reason").read_text()
        assert written.count("\n") == 1 and expect in written, (name, written)
    assert "Traceback" not in "".join(reasons.values())
    assert {p.kind for p in run.problems} == {"file"}
    left = {p.name for p in inbox.iterdir()}
    assert left == {"done", "failed", watch.STATE}
    assert (outside / "secret.mat").is_file()  # the link moved, never what it points to
    assert (inbox / "failed/link.mat").is_symlink()
    assert {"failed/short.dat", "failed/tiny.dat", "failed/dir.hea"} <= set(
        str(p.relative_to(inbox)) for p in (inbox / "failed").iterdir()
    )
    assert sorted(accounted(inbox)) == sorted(
        ["done/A1982.mat", "done/00005_lr.hea", "done/00005_lr.dat"]
        + [f"failed/{n}" for n in HOSTILE if n != "dir.hea"]
        + ["failed/short.dat", "failed/tiny.dat"]
    )
    rows = Ledger(inbox / watch.STATE / "ledger.sqlite").all()
    assert len(rows) == len(HOSTILE) + 2 and all(r.moved for r in rows)
    assert {r.name: r.state for r in rows}["copy.mat"] == "duplicate"


def test_a_name_taken_in_done_is_not_overwritten(tmp_path: Path, ptbxl_root: Path) -> None:
    h, d = ptbxl(ptbxl_root, 6)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / d.name).write_bytes(b"an earlier file of this name")
    run = Driver(WatchSource(tmp_path, **FAST))
    put(tmp_path, d, h)
    run.wait(lambda: run.ends and not (tmp_path / h.name).exists(), "the record")
    run.stop()
    assert (tmp_path / "done" / d.name).read_bytes() == b"an earlier file of this name"
    assert accounted(tmp_path) == sorted(
        [f"done/{d.name}", f"done/00006_lr-2/{h.name}", f"done/00006_lr-2/{d.name}"]
    )


@pytest.mark.parametrize("race", ["replaced", "deleted"])
def test_a_file_replaced_or_deleted_while_read_is_not_taken_as_read(
    tmp_path: Path, cpsc_root: Path, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    """The writer strikes between settling and the end of the read: what was read is thrown
    away (no stream, no ledger row); a replaced file settles again and is taken once."""
    real_read = watch.read_recording
    raced: list[Path] = []

    def racing_read(path: Path):
        if not raced:
            raced.append(path)
            if race == "deleted":
                path.unlink()
            else:
                shutil.copyfile(cpsc_root / "A1989.mat", path)
        return real_read(path)

    monkeypatch.setattr(watch, "read_recording", racing_read)
    put(tmp_path, cpsc_root / "A1988.mat", name="ecg.mat")
    run = Driver(WatchSource(tmp_path, **FAST))
    run.wait(lambda: raced, "the read")
    if race == "replaced":
        run.wait(lambda: run.ends, "the replacement, settled")
    else:
        time.sleep(1.0)  # several polls: nothing is left to take
    run.stop()
    rows = Ledger(tmp_path / watch.STATE / "ledger.sqlite").all()
    if race == "deleted":
        assert run.events == [] and rows == []
        return
    assert len(run.ends) == 1 and not run.problems
    np.testing.assert_array_equal(
        run.signal(run.ends[0]), read_recording(cpsc_root / "A1989.mat").signal.T
    )
    data = (cpsc_root / "A1989.mat").read_bytes()
    sha = hashlib.sha256(f"{len(data)}\n".encode() + data).hexdigest()  # of what was read
    assert [(r.name, r.state, r.sha256) for r in rows] == [("ecg.mat", "done", sha)]
    assert (tmp_path / "done/ecg.mat").read_bytes() == data


def test_restart_classifies_the_interrupted_file_again_and_moves_a_finished_one(
    tmp_path: Path, cpsc_root: Path
) -> None:
    """A monitor killed while classifying (no stream_finished: claimed in the ledger) and a
    crash between the ledger's "done" and the move: the next start classifies the first
    again, under the same stream id, and moves the second without classifying it."""
    put(tmp_path, cpsc_root / "A1984.mat")
    first = Driver(WatchSource(tmp_path, **FAST), finish=False)
    first.wait(lambda: first.ends, "the first run's stream end")
    first.stop()
    assert (tmp_path / "A1984.mat").exists()
    ledger = Ledger(tmp_path / watch.STATE / "ledger.sqlite")
    put(tmp_path, cpsc_root / "A1985.mat")
    row = ledger.add("f" * 64, "A1985.mat", [("A1985.mat", 508398)], "claimed", stream="x")
    ledger.finish(row, "done", None, "done")  # the crash came before the move
    second = Driver(WatchSource(tmp_path, **FAST))
    second.wait(lambda: not any(p.suffix == ".mat" for p in tmp_path.iterdir()), "both moved")
    second.stop()
    assert second.ends == first.ends  # the same stream id
    assert accounted(tmp_path) == ["done/A1984.mat", "done/A1985.mat"]
    assert [(r.name, r.state, r.moved) for r in ledger.all()] == [
        ("A1984.mat", "done", True),
        ("A1985.mat", "done", True),
    ]


def test_a_second_monitor_on_the_same_inbox_is_refused(tmp_path: Path) -> None:
    first = Driver(WatchSource(tmp_path, **FAST))
    first.wait(lambda: (tmp_path / watch.STATE / "lock").exists(), "the first monitor")
    time.sleep(0.2)
    second = Driver(WatchSource(tmp_path, **FAST))
    second.thread.join(TIMEOUT_S)
    first.stop()
    assert "another monitor watches this inbox" in str(second.error)


def test_a_failed_move_leaves_the_file_and_is_tried_again(
    tmp_path: Path, cpsc_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """done/ unusable (a file in its place, as a read-only or full disk would refuse the
    move): one problem line, the file stays in the inbox, the monitor goes on; once done/
    can be made, the next try moves it, without classifying it again."""
    monkeypatch.setattr(watch, "RETRY_S", 0.5)
    (tmp_path / "done").write_text("not a folder")
    run = Driver(WatchSource(tmp_path, **FAST))
    put(tmp_path, cpsc_root / "A1986.mat")
    run.wait(lambda: run.problems, "the failed move")
    assert "cannot move it to done/" in run.problems[0].reason
    assert (tmp_path / "A1986.mat").exists()
    (tmp_path / "done").unlink()
    run.wait(lambda: (tmp_path / "done/A1986.mat").exists(), "the retried move")
    run.stop()
    assert len(run.ends) == 1
    [row] = Ledger(tmp_path / watch.STATE / "ledger.sqlite").all()
    assert (row.state, row.moved) == ("done", True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_fails_with_its_reason(tmp_path: Path, cpsc_root: Path) -> None:
    put(tmp_path, cpsc_root / "A1987.mat")
    (tmp_path / "A1987.mat").chmod(0)
    run = Driver(WatchSource(tmp_path, **FAST))
    run.wait(lambda: run.problems, "the refusal")
    run.stop()
    assert "unreadable (Permission denied)" in run.problems[0].reason
    assert accounted(tmp_path) == ["failed/A1987.mat"]


def test_spec(tmp_path: Path) -> None:
    src = make_source(f"watch:{tmp_path}")
    assert isinstance(src, WatchSource) and src.describe().startswith(f"watch: {tmp_path}")
    with pytest.raises(ValueError, match="not a directory"):
        make_source(f"watch:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="expected watch:DIR"):
        make_source("watch:")
