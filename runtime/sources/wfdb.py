"""Replays ECG records from disk as if each were a live patient: one stream per record, of
any format ``mrm_edge.records`` reads, named by files, record stems or directories. Which records
are kept (one rate per PTB-XL ECG), the stream ids and why records are read up front:
docs/monitor.md#sources. Replay itself is :class:`ArraySource`."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mrm_edge.runtime.sources.base import ArraySource, SpecError

from mrm_edge.data.errors import DataError
from mrm_edge.data.wfdb_header import check_wfdb_header
from mrm_edge.errors import one_line
from mrm_edge.records import find_recordings, read_recording

if TYPE_CHECKING:
    from mrm_edge.runtime.sources.registry import SourceOptions

log = logging.getLogger(__name__)

_TWIN = re.compile(r"^(?P<ecg>.+)_(?P<rate>lr|hr)$")  # PTB-XL: 00001_lr / 00001_hr


def _expand(path: Path) -> list[Path]:
    """Record paths named by one argument (a directory is searched recursively)."""
    if path.is_dir():
        found = find_recordings(path)
        if not found:
            raise DataError(f"{path}: no ECG recordings of a known format in this directory")
        return found
    if path.is_file() and path.suffix != ".dat":  # a header or a file of any format
        return [path]
    suffixed = path.suffix in (".hea", ".dat", ".mat")
    # A record stem's name may itself contain dots: not with_suffix.
    header = path.with_suffix(".hea") if suffixed else Path(f"{path}.hea")
    if not header.is_file():
        if suffixed:
            raise DataError(f"{header if path.suffix != '.mat' else path}: no such file")
        raise DataError(f"{path}: not a directory, a record file or a WFDB record stem")
    return [header]


def _rate(path: Path) -> int:
    """The header's sampling rate (0 if the header is bad: the full read reports it)."""
    try:
        return round(check_wfdb_header(path).fs)
    except DataError:
        return 0


def find_records(
    paths: Iterable[str | Path], prefer_rate: int | None = None
) -> tuple[list[Path], list[str]]:
    """Record paths to replay, and notes on what was skipped.

    In argument order (a directory's records sorted by path), each record once, so
    ``--stream-id`` lists line up with the records named. Of PTB-XL twins (``NNNNN_lr`` /
    ``NNNNN_hr``) the one at ``prefer_rate`` is kept if given, else the higher rate.
    """
    found: dict[Path, None] = {}  # ordered set of absolute paths
    for p in paths:
        for r in _expand(Path(p)):
            # abspath, not resolve(): a symlinked record keeps its own name.
            found.setdefault(Path(os.path.abspath(r)), None)
    records = list(found)
    # ecg -> {"lr": [...], "hr": [...]}; copies of one record share a suffix and stay.
    twins: dict[str, dict[str, list[Path]]] = {}
    for r in records:
        m = _TWIN.match(r.with_suffix("").name)
        if m and r.suffix != ".mat":
            twins.setdefault(m["ecg"], {}).setdefault(m["rate"], []).append(r)
    skipped: list[str] = []
    drop: set[Path] = set()
    for ecg, by_suffix in twins.items():
        if len(by_suffix) < 2:
            continue
        rates = {suffix: _rate(paths[0]) for suffix, paths in by_suffix.items()}
        preferred = [s for s in by_suffix if rates[s] == prefer_rate]
        keep = preferred[0] if preferred else max(by_suffix, key=lambda s: (rates[s], s))
        kept = by_suffix[keep][0]
        for suffix, paths in by_suffix.items():
            if suffix == keep:
                continue
            drop.update(paths)
            skipped += [
                f"{r}: skipped, ECG {ecg} is replayed from {kept.name} ({rates[keep]} Hz)"
                for r in paths
            ]
    return [r for r in records if r not in drop], skipped


def unique_ids(names: Sequence[str]) -> list[str]:
    """``names`` made unique in order: a repeat of ``X`` becomes ``X-2``, ``X-3``, ..."""
    seen: set[str] = set()
    out = []
    for name in names:
        sid, k = name, 1
        while sid in seen:
            k += 1
            sid = f"{name}-{k}"
        seen.add(sid)
        out.append(sid)
    return out


def read_records(
    paths: Sequence[Path], min_seconds: float | None = None
) -> list[tuple[str, np.ndarray, int]]:
    """``(name, [samples, leads] float32 mV, rate)`` per record; DataError names the file,
    also for a record shorter than ``min_seconds``."""
    out = []
    for path in paths:
        try:
            rec = read_recording(path)
        except DataError as e:
            msg = str(e)
            raise DataError(msg if path.name in msg else f"{path}: {msg}") from None
        except Exception as e:  # any parser failure is bad input, not a crash
            raise DataError(f"{path}: unreadable record ({one_line(e)})") from None
        if rec.signal.shape[1] == 0:
            raise DataError(f"{path}: record has no samples")
        if min_seconds is not None and rec.seconds < min_seconds:
            raise DataError(
                f"{path}: record is {rec.seconds:.1f} s, the model needs at least "
                f"{min_seconds:.1f} s (one {min_seconds:g} s window)"
            )
        for note in rec.notes:
            log.info("%s: %s", path, note)
        # records.py returns [leads, samples]; the runtime works in [samples, leads].
        out.append((rec.name, np.ascontiguousarray(rec.signal.T, dtype=np.float32),
                    rec.sampling_rate))  # fmt: skip
    return out


def load_records(
    paths: Iterable[str | Path], prefer_rate: int | None = None, min_seconds: float | None = None
) -> list[tuple[str, Path, np.ndarray, int]]:
    """``(stream id, path, [samples, leads] float32 mV, rate)`` per record to replay: the
    records ``find_records`` keeps, read, and named by ``unique_ids``."""
    records, skipped = find_records(paths, prefer_rate)
    if skipped:
        log.info("%d records skipped (one rate per PTB-XL ECG), e.g. %s", len(skipped), skipped[0])
    loaded = read_records(records, min_seconds)
    ids = unique_ids([name for name, _, _ in loaded])
    return [(sid, path, x, fs) for sid, path, (_, x, fs) in zip(ids, records, loaded, strict=True)]


class WfdbReplaySource(ArraySource):
    """Replay of WFDB / CPSC records, one stream per record (docs/monitor.md#sources).

    ``chunk_seconds``: a float, or a sequence cycled through chunk by chunk (tests use
    random sizes); ``speed``: 1.0 real time, N times faster, None as fast as possible;
    ``min_seconds``: refuse shorter records (the model's window; None: any length).
    """

    @classmethod
    def from_spec(cls, argument: str, options: SourceOptions) -> WfdbReplaySource:
        """``--source wfdb:PATH[,PATH...]``."""
        paths = [p.strip() for p in argument.split(",") if p.strip()]
        if not paths:
            raise SpecError("expected wfdb:PATH[,PATH...]")
        return cls(
            paths,
            speed=options.speed,
            loop=options.loop,
            min_seconds=options.min_seconds,
        )

    def __init__(
        self,
        paths: Iterable[str | Path],
        chunk_seconds: float | Sequence[float] = 0.2,
        speed: float | None = 1.0,
        loop: bool = False,
        min_seconds: float | None = None,
    ) -> None:
        loaded = load_records(paths, min_seconds=min_seconds)
        super().__init__(
            {sid: (x, fs) for sid, _, x, fs in loaded},
            chunk_seconds=chunk_seconds,
            speed=speed,
            loop=loop,
        )

    def describe(self) -> str:
        rates = sorted({fs for _, fs in self.recordings.values()})
        pace = "max speed" if self.speed is None else f"{self.speed:g}x"
        loop = ", looping" if self.loop else ""
        hz = "/".join(map(str, rates))
        return f"wfdb: {len(self.recordings)} records at {hz} Hz, {pace}{loop}"
