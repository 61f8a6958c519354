"""The watched inbox's acceptance run: 200 records (real PTB-XL WFDB records at 100 Hz and
CPSC 2018 .mat files, plus hostile ones) arrive while a real ``mrm-edge monitor --source
watch:DIR`` classifies them with the shipped model; the monitor is stopped in the middle
(SIGTERM, or SIGKILL) and started again. At the end every record is accounted for exactly
once: in done/ or failed/, one ledger row each, its windows in the event log once (after
SIGKILL the one file in flight may repeat), and the runs' summaries agree.

A new file kind is one row of ``kinds()`` (kind, how many, maker); a new record format one
row of ``FORMATS`` (its test writer, tests/records/)."""

from __future__ import annotations

import functools
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from mrm_edge.runtime.sources import watch
from mrm_edge.runtime.sources.ledger import Ledger

from mrm_edge.records import read_recording
from tests.conftest import SHARED_DATA
from tests.eventlog import wait_until

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

MRM_EDGE = Path(sys.executable).parent / "mrm-edge"
MODEL = Path(__file__).resolve().parents[3] / "models/mrm-net-ptbxl-superdiagnostic"
N_ITEMS = 200


@dataclass(frozen=True)
class Item:
    """One record to drop into the inbox: its files (signal files first, the entry last;
    the entry is what the ledger names) and the state it must end in."""

    files: tuple[tuple[str, bytes], ...]
    expect: str  # done, failed

    @property
    def entry(self) -> str:
        return self.files[-1][0]


Maker = Callable[[int], Item]


@functools.cache
def _headers() -> list[Path]:
    return sorted((SHARED_DATA / "ptb-xl/records100").glob("*/*.hea"))


def _ptbxl(k: int) -> Item:
    header = _headers()[k]
    dat = header.with_suffix(".dat")
    return Item(((dat.name, dat.read_bytes()), (header.name, header.read_bytes())), "done")


def _cpsc(k: int) -> Item:
    mat = sorted((SHARED_DATA / "cpsc2018").glob("A*.mat"))[k]
    return Item(((mat.name, mat.read_bytes()),), "done")


# The record formats (mrm_edge/records/): a PTB-XL record written by the format's test
# writer (tests/records/), as a cart or management system would export it.
FORMATS = [  # (kind, writer module, writer, file suffix)
    ("DICOM 12-lead", "dicom_writer", "write_dicom", ".dcm"),
    ("HL7 aECG", "aecg_writer", "write_aecg", ".xml"),
    ("GE MUSE XML", "muse_writer", "write_muse", ".xml"),
    ("Philips Sierra XML", "sierra_writer", "write_sierra", ".xml"),
    ("EDF", "edf_writer", "write_edf", ".edf"),
    ("SCP-ECG", "scp_writer", "write_scp", ".scp"),
]
N_PER_FORMAT = 3


def _written(i: int, module: str, writer: str, suffix: str) -> Maker:
    def make(k: int) -> Item:
        write = getattr(importlib.import_module(f"tests.records.{module}"), writer)
        rec = read_recording(_headers()[300 + 10 * i + k])  # records of its own
        with tempfile.TemporaryDirectory() as tmp:
            path = write(Path(tmp) / f"{module.split('_')[0]}-{k}{suffix}", rec)
            return Item(((path.name, path.read_bytes()),), "done")

    return make


def _format_kinds() -> list[tuple[str, int, Maker]]:
    """The formats whose writer's library is installed (an extra may be missing)."""
    out = []
    for i, (kind, module, writer, suffix) in enumerate(FORMATS):
        make = _written(i, module, writer, suffix)
        try:
            make(0)
        except ImportError:
            continue
        out.append((kind, N_PER_FORMAT, make))
    return out


def _garbage(k: int) -> Item:
    suffix = [".xml", ".dcm", ".bin", ".mat", ".scp", ".edf"][k % 6]
    return Item(((f"garbage-{k}{suffix}", random.Random(k).randbytes(5000 + k)),), "failed")


def _truncated_dat(k: int) -> Item:
    """A PTB-XL header with its signal file cut short."""
    src = _ptbxl(400 + k)
    (_, data), (hea, text) = src.files
    name = f"truncated-{k}"
    header = text.replace(Path(hea).stem.encode(), name.encode())
    return Item(((f"{name}.dat", data[: 1000 + 97 * k]), (f"{name}.hea", header)), "failed")


def _empty(k: int) -> Item:
    return Item(((f"empty-{k}{['.hea', '.mat', '.xml', ''][k % 4]}", b""),), "failed")


def _not_matlab(k: int) -> Item:
    return Item(((f"not-matlab-{k}.mat", b"MATLAB 5.0 MAT-file, honestly\n" * (k + 1)),), "failed")


def _duplicate(k: int) -> Item:
    """Another record's bytes under a new name (half of a CPSC file's, half a garbage's)."""
    original = _cpsc(k) if k % 2 == 0 and _has_cpsc() else _garbage(k % 6)
    ((_, data),) = original.files
    return Item(((f"duplicate-{k}.mat", data),), "duplicate")


def _has_cpsc() -> bool:
    return (SHARED_DATA / "cpsc2018/REFERENCE.csv").is_file()


def kinds() -> list[tuple[str, int, Maker]]:
    """(kind, how many, maker): 200 records, hostile ones included."""
    n_cpsc = 10 if _has_cpsc() else 0
    hostile = [
        ("garbage bytes", 6, _garbage),
        ("truncated .dat", 6, _truncated_dat),
        ("empty file", 4, _empty),
        ("a .mat that is not MATLAB", 4, _not_matlab),
        ("duplicate content", 10, _duplicate),
    ]
    formats = _format_kinds()
    n_ptbxl = N_ITEMS - n_cpsc - sum(n for _, n, _ in hostile + formats)
    wfdb = [("PTB-XL WFDB 100 Hz", n_ptbxl, _ptbxl), ("CPSC .mat", n_cpsc, _cpsc)]
    return [*wfdb, *formats, *hostile]


def make_items() -> list[Item]:
    """All records, shuffled; the duplicates in the second half (after their originals)."""
    made = {kind: [make(k) for k in range(n)] for kind, n, make in kinds()}
    dups = made.pop("duplicate content")
    items = [item for kind_items in made.values() for item in kind_items]
    random.Random(0).shuffle(items)
    half = len(items) // 2
    rest = items[half:] + dups
    random.Random(1).shuffle(rest)
    return items[:half] + rest


def drop(inbox: Path, items: list[Item]) -> None:
    """Write ``items`` into the inbox, alternately in place and "write, then rename"."""
    for i, item in enumerate(items):
        for name, data in item.files:
            target = inbox / name
            tmp = target if i % 2 else inbox / f"{name}.part"
            tmp.write_bytes(data)
            if tmp != target:
                os.rename(tmp, target)
        time.sleep(0.01)


def start(inbox: Path, events: Path, append: bool) -> subprocess.Popen:
    cmd = [MRM_EDGE, "monitor", "--model", MODEL, "--source", f"watch:{inbox}", "--no-ui",
           "--backend", "onnxruntime", "--precision", "int8", "--max-delay", "5",
           "--events", events, *(["--events-append"] if append else [])]  # fmt: skip
    err = (events.parent / "stderr.txt").open("a")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)


def events_of(path: Path) -> tuple[list[dict], int]:
    """The log's records, and how many lines did not parse (a line cut by SIGKILL)."""
    out, bad = [], 0
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    return out, bad


def moved(inbox: Path) -> int:
    path = inbox / watch.STATE / "ledger.sqlite"
    return sum(r.moved for r in Ledger(path).all()) if path.exists() else 0


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_200_files_with_a_restart_each_accounted_once(tmp_path: Path, how: str) -> None:
    if not (SHARED_DATA / "ptb-xl/ptbxl_database.csv").is_file():
        pytest.skip(f"PTB-XL subset not found under {SHARED_DATA}")
    inbox, events = tmp_path / "inbox", tmp_path / "events.jsonl"
    inbox.mkdir()
    items = make_items()
    assert len(items) == N_ITEMS
    first = start(inbox, events, append=False)
    try:
        drop(inbox, items[:100])
        wait_until(lambda: moved(inbox) >= 50, 90, "50 records through the first run")
        first.send_signal(getattr(signal, how))
        first.wait(60)
    finally:
        first.kill()
    second = start(inbox, events, append=True)
    try:
        drop(inbox, items[100:])
        wait_until(lambda: moved(inbox) == N_ITEMS, 120, "every record through")
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, (tmp_path / "stderr.txt").read_text()
    finally:
        second.kill()
    assert first.returncode == (0 if how == "SIGTERM" else -signal.SIGKILL)
    check_inbox(inbox, items)
    check_log(inbox, events, how)


def check_inbox(inbox: Path, items: list[Item]) -> None:
    """Each record once in the ledger and its files in the folder the ledger names."""
    assert {p.name for p in inbox.iterdir()} == {watch.DONE, watch.FAILED, watch.STATE}
    rows = Ledger(inbox / watch.STATE / "ledger.sqlite").all()
    by_name = {r.name: r for r in rows}
    assert len(rows) == len(by_name) == N_ITEMS and all(r.moved for r in rows)
    placed = Counter(
        p.name
        for p in inbox.rglob("*")
        if p.is_file() and watch.STATE not in p.parts and not p.name.endswith(".reason")
    )
    assert placed == Counter(name for item in items for name, _ in item.files)
    for item in items:
        row = by_name[item.entry]
        for name, data in item.files:
            assert (inbox / row.dest / name).read_bytes() == data, (row.dest, name)
        if row.state != "done":
            reason = (inbox / row.dest / f"{item.entry}.reason").read_text()
            assert reason.count("\n") == 1 and reason.strip() == row.reason
    # Per content: the first record is classified (done) or refused (failed), every later
    # one is a duplicate.
    by_content: dict[bytes, list[str]] = {}
    for item in items:
        by_content.setdefault(b"".join(d for _, d in item.files), []).append(item.entry)
    expect = {item.entry: item.expect for item in items}
    for names in by_content.values():
        states = [by_name[n].state for n in names]
        assert states.count("duplicate") == len(names) - 1, names
        [first] = [n for n in names if by_name[n].state != "duplicate"]
        [want] = {expect[n] for n in names} - {"duplicate"}  # the original's kind says
        assert by_name[first].state == want, (first, by_name[first].reason)


def check_log(inbox: Path, events: Path, how: str) -> None:
    """Every done record's windows in the log once (SIGKILL: the one in flight may repeat);
    the summaries' counts agree with the log."""
    log, unparsed = events_of(events)
    assert unparsed <= (1 if how == "SIGKILL" else 0)
    rows = Ledger(inbox / watch.STATE / "ledger.sqlite").all()
    done = {r.stream for r in rows if r.state == "done"}
    windows = [e for e in log if e["type"] == "window"]
    per_key = Counter((e["stream"], e["start"]) for e in windows)
    repeated = {sid for (sid, _), n in per_key.items() if n > 1}
    assert len(repeated) <= (1 if how == "SIGKILL" else 0), repeated
    assert {e["stream"] for e in windows} == done  # every done file classified, no other
    summaries = [e for e in log if e["type"] == "summary"]
    assert len([e for e in log if e["type"] == "start"]) == 2
    assert len(summaries) == (2 if how == "SIGTERM" else 1)
    refused = sum(r.state != "done" for r in rows)
    if how == "SIGTERM":
        assert sum(s["classified"] + s["rejected"] for s in summaries) == len(windows)
        assert sum(s["dropped"] for s in summaries) == 0
        assert sum(s["source_problems_by_kind"].get("file", 0) for s in summaries) == refused
        assert set().union(*(s["per_stream"] for s in summaries)) == done
    else:  # the second run's own lines
        [last] = summaries
        second = log[max(i for i, e in enumerate(log) if e["type"] == "start") :]
        assert last["classified"] + last["rejected"] == sum(e["type"] == "window" for e in second)
