"""Fuzzing the record readers, bounded in time: whatever is done to a real WFDB header, its
.dat file or a real CPSC .mat, the readers return a correctly shaped signal or raise
``DataError`` (never another exception type), and finish.

Inputs are mutations of REAL files (PTB-XL record 00001_lr, CPSC A1980): random line
deletions, duplications, truncations and token swaps in the header (tokens chosen to hit
the parser's edges: empty, zero, negative, huge, non-numeric, other format codes), .dat
truncation and byte flips, .mat truncation and byte flips. Each example runs under a hard
cap (an interval timer, since hypothesis' ``deadline`` only measures and cannot stop a
hang); ``max_examples`` bounds each test; ``derandomize`` keeps CI runs identical.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrm_edge.data.cpsc2018 import read_cpsc_mat
from mrm_edge.data.errors import DataError
from mrm_edge.data.ptbxl import read_ptbxl_record
from mrm_edge.records import read_recording
from tests import fuzz

pytestmark = pytest.mark.realdata

CAP_S = 5.0  # per example; a healthy read of these files takes milliseconds
FUZZ = settings(
    max_examples=120,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
    database=None,
)
REC = "records100/00000/00001_lr"
TOKENS = ["", "0", "-1", "7", "1e309", "nan", "abc", "99", "8", "212", "16x2", "16+9999",
          "100/0", "1000000", "99999999999", "(0)/mV", "0/uV", "#", "~", "I", "AVR"]  # fmt: skip


def hard_cap(seconds: float = CAP_S) -> contextlib.AbstractContextManager[None]:
    return fuzz.hard_cap(seconds, "reader")


@pytest.fixture(scope="module")
def real(ptbxl_root: Path, cpsc_root: Path) -> dict[str, bytes]:
    return {
        "hea": (ptbxl_root / f"{REC}.hea").read_bytes(),
        "dat": (ptbxl_root / f"{REC}.dat").read_bytes(),
        "mat": (cpsc_root / "A1980.mat").read_bytes(),
    }


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def check_wfdb(folder: Path) -> None:
    """Both WFDB readers on ``folder/00001_lr``: a good shape, or DataError."""
    try:
        with hard_cap():
            rec = read_recording(folder / "00001_lr.hea")
    except DataError as e:
        assert "\n" not in str(e).strip() and str(e), repr(e)
    else:
        assert rec.signal.shape[0] == 12 and rec.signal.shape[1] > 0
        assert rec.signal.dtype == np.float32
        assert 50 <= rec.sampling_rate <= 20_000
        assert not np.isinf(rec.signal).any()  # NaN: WFDB's missing sample, for the gate
    try:
        with hard_cap():
            x = read_ptbxl_record(folder, "00001_lr", 100)
    except DataError as e:
        assert "\n" not in str(e).strip() and str(e), repr(e)
    else:  # the training reader: exactly 10 s at 100 Hz, finite
        assert x.shape == (12, 1000) and np.isfinite(x).all()


# One edit of the header: (kind, line index, position, token).
edits = st.tuples(
    st.sampled_from(["delete", "duplicate", "truncate", "token", "insert"]),
    st.integers(0, 13),
    st.integers(0, 60),
    st.sampled_from(TOKENS),
)


def mutate_header(text: str, ops: list[tuple[str, int, int, str]], cut: int | None) -> str:
    lines = text.splitlines()
    for kind, i, pos, token in ops:
        if not lines:
            break
        i %= len(lines)
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "truncate":
            lines[i] = lines[i][:pos]
        elif kind == "insert":
            lines.insert(i, token)
        else:  # replace one whitespace-separated field
            fields = lines[i].split()
            if fields:
                fields[pos % len(fields)] = token
                lines[i] = " ".join(fields)
    out = "\n".join(lines) + "\n"
    return out if cut is None else out[:cut]


@FUZZ
@given(ops=st.lists(edits, min_size=1, max_size=4), cut=st.none() | st.integers(0, 700))
def test_header_mutations(real, workdir: Path, ops, cut) -> None:
    (workdir / "00001_lr.hea").write_text(mutate_header(real["hea"].decode(), ops, cut))
    (workdir / "00001_lr.dat").write_bytes(real["dat"])
    check_wfdb(workdir)


@FUZZ
@given(
    cut=st.none() | st.integers(0, 24_000),
    flips=st.lists(st.tuples(st.integers(0, 23_999), st.integers(0, 255)), max_size=20),
)
def test_dat_truncation_and_byte_flips(real, workdir: Path, cut, flips) -> None:
    data = bytearray(real["dat"])
    for pos, value in flips:
        data[pos] = value
    (workdir / "00001_lr.hea").write_bytes(real["hea"])
    (workdir / "00001_lr.dat").write_bytes(bytes(data if cut is None else data[:cut]))
    check_wfdb(workdir)


@FUZZ
@given(
    cut=st.none() | st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=8),
    far_flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
)
def test_mat_truncation_and_byte_flips(real, workdir: Path, cut, flips, far_flips) -> None:
    """Flips near the start hit the MATLAB headers (sizes, types, names), far ones the data."""
    data = bytearray(real["mat"])
    for pos, value in [*flips, *far_flips]:
        data[pos % len(data)] = value
    path = workdir / "A1980.mat"
    path.write_bytes(bytes(data if cut is None else data[:cut]))
    try:
        with hard_cap():
            x, fs = read_cpsc_mat(path)
    except DataError as e:
        assert "\n" not in str(e).strip() and str(e), repr(e)
    else:
        assert x.ndim == 2 and x.shape[0] == 12 and x.shape[1] > 0 and fs == 500
        assert np.isfinite(x).all()  # the training reader refuses NaN/Inf
    try:
        with hard_cap():
            rec = read_recording(path)
    except DataError as e:
        assert "\n" not in str(e).strip() and str(e), repr(e)
    else:
        assert rec.signal.shape[0] == 12 and rec.signal.dtype == np.float32
