"""mrm_edge.data.wfdb_header: a WFDB header checked before wfdb trusts it."""

from pathlib import Path

import pytest

from mrm_edge.data.errors import DataError
from mrm_edge.data.wfdb_header import check_wfdb_header


def _record(tmp_path: Path, header: str, dat_bytes: int) -> Path:
    (tmp_path / "r.dat").write_bytes(b"\0" * dat_bytes)
    hea = tmp_path / "r.hea"
    hea.write_text(header)
    return hea


def test_good_header(tmp_path: Path) -> None:
    # 2 signals x 10 samples in format 16: 40 bytes.
    hea = _record(
        tmp_path, "r 2 500 10\nr.dat 16 1000/mV 16 0 0 0 0 I\nr.dat 16 1000/mV 16 0 0 0 0 II\n", 40
    )
    h = check_wfdb_header(hea)
    assert (h.n_sig, h.fs, h.sig_len) == (2, 500.0, 10)


def test_bad_rate_and_empty_header(tmp_path: Path) -> None:
    hea = _record(tmp_path, "r 1 abc 10\nr.dat 16 1000/mV 16 0 0 0 0 I\n", 20)
    with pytest.raises(DataError, match=r"r\.hea"):
        check_wfdb_header(hea)
    hea.write_text("")
    with pytest.raises(DataError, match="empty WFDB header"):
        check_wfdb_header(hea)


def test_truncated_signal_file(tmp_path: Path) -> None:
    hea = _record(tmp_path, "r 1 500 10\nr.dat 16 1000/mV 16 0 0 0 0 I\n", 8)
    with pytest.raises(DataError, match="r"):
        check_wfdb_header(hea)
