"""The level-5 check that runs before scipy parses a CPSC ``.mat`` (mrm_edge/data/matfile.py)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from mrm_edge.data.cpsc2018 import read_cpsc_mat
from mrm_edge.data.errors import DataError
from mrm_edge.data.matfile import MatFileError, verified_level5_bytes


@pytest.fixture
def compressed_mat(tmp_path: Path) -> bytes:
    data = np.arange(12 * 500, dtype=np.int16).reshape(12, 500)
    path = tmp_path / "x.mat"
    savemat(path, {"ECG": {"data": data}}, do_compression=True)
    return path.read_bytes()


def test_real_files_parse_the_same_through_the_check(cpsc_root: Path) -> None:
    for path in sorted(cpsc_root.glob("*.mat"))[:3]:
        direct = loadmat(path, simplify_cells=True)["ECG"]["data"]
        checked = loadmat(verified_level5_bytes(path.read_bytes()), simplify_cells=True)
        np.testing.assert_array_equal(checked["ECG"]["data"], direct)


def test_uncompressed_and_compressed_files_both_pass(tmp_path: Path, compressed_mat) -> None:
    plain = tmp_path / "plain.mat"
    savemat(plain, {"ECG": {"data": np.ones((12, 10))}}, do_compression=False)
    for raw in (plain.read_bytes(), compressed_mat):
        assert (
            loadmat(verified_level5_bytes(raw), simplify_cells=True)["ECG"]["data"].shape[0] == 12
        )


def test_a_damaged_deflate_stream_is_refused_before_scipy_parses_it(compressed_mat) -> None:
    raw = bytearray(compressed_mat)
    raw[len(raw) // 2] ^= 0xFF  # inside the deflate data: only the checksum can tell
    with pytest.raises(MatFileError, match="compressed element at byte 128"):
        verified_level5_bytes(bytes(raw))


@pytest.mark.parametrize("cut", [130, 200, -3])
def test_truncation_is_refused_with_where(compressed_mat, cut: int) -> None:
    with pytest.raises(MatFileError, match="byte"):
        verified_level5_bytes(compressed_mat[:cut])


def test_a_wrong_endian_marker_and_an_oversized_tag_are_refused(compressed_mat) -> None:
    bad_marker = compressed_mat[:126] + b"XX" + compressed_mat[128:]
    with pytest.raises(MatFileError, match="endian marker"):
        verified_level5_bytes(bad_marker)
    inner = zlib.compress(struct.pack("<II", 14, 10**6) + b"\0" * 16)
    lying = compressed_mat[:128] + struct.pack("<II", 15, len(inner)) + inner
    with pytest.raises(MatFileError, match="declares 1000000 bytes"):
        verified_level5_bytes(lying)


def test_non_level5_bytes_are_left_to_scipy() -> None:
    raw = b"not a mat file at all"
    assert isinstance(verified_level5_bytes(raw), io.BytesIO)
    assert verified_level5_bytes(raw).read() == raw


def test_the_reader_turns_damage_into_one_line(tmp_path: Path, compressed_mat) -> None:
    raw = bytearray(compressed_mat)
    raw[len(raw) // 2] ^= 0xFF
    path = tmp_path / "A0001.mat"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as info:
        read_cpsc_mat(path)
    message = str(info.value)
    assert message.startswith("A0001.mat: not a readable MATLAB file") and "\n" not in message
