"""A JSON cache of activation ranges, one file per key: a SHA-256 over everything that
determines the ranges (FP32 ONNX bytes, the windows' fingerprint, method and parameters, the
ONNX Runtime version), so a stale entry is never asked for again. A cache must never fail an
export: an unreadable, truncated or tampered file is a warning and a miss."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mrm_edge.calibration.ranges import Ranges
from mrm_edge.calibration.windows import CalibrationSet

from mrm_edge.fileio import atomic_write_bytes, sha256_file

CACHE_FORMAT = 1


class CalibrationCacheWarning(UserWarning):
    """A cache file was unusable and is being ignored (it will be recomputed)."""


def calibration_key(
    fp32_onnx: str | Path, cset: CalibrationSet, method: str, params: Mapping[str, Any]
) -> str:
    """The cache key (hex SHA-256) of ranges for ``fp32_onnx`` on ``cset`` with ``method``."""
    import onnxruntime  # its calibrators compute the ranges: its version is in the key

    material = {
        "format": CACHE_FORMAT,
        "onnx_sha256": sha256_file(Path(fp32_onnx)),
        "calibration": cset.fingerprint(),
        "method": method,
        "params": dict(params),
        "onnxruntime": onnxruntime.__version__,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class CalibrationCache:
    """Ranges stored as ``<directory>/<key>.json``.

    ``load(key)`` returns the ranges or ``None`` (absent, or unusable → warning);
    ``save(key, ranges, meta)`` writes atomically, so a crash mid-write leaves no
    half-written entry behind.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"calibration cache key {key!r} is not a hex digest")
        return self.directory / f"{key}.json"

    def load(self, key: str) -> Ranges | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return self._parse(doc, key)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:160]
            warnings.warn(
                f"{path}: ignoring unusable calibration cache entry ({reason}); recomputing",
                CalibrationCacheWarning,
                stacklevel=2,
            )
            return None

    @staticmethod
    def _parse(doc: Any, key: str) -> Ranges:
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object, found {type(doc).__name__}")
        if doc.get("format") != CACHE_FORMAT:
            raise ValueError(f"field 'format' is {doc.get('format')!r}, expected {CACHE_FORMAT}")
        if doc.get("key") != key:
            raise ValueError("field 'key' does not match the file name")
        raw = doc.get("ranges")
        if not isinstance(raw, dict) or not raw:
            raise ValueError("field 'ranges' is missing or empty, expected {tensor: [min, max]}")
        out: Ranges = {}
        for name, pair in raw.items():
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
                or not all(math.isfinite(v) for v in pair)
                or pair[0] > pair[1]
            ):
                raise ValueError(f"field 'ranges.{name}' is {pair!r}, expected [min, max] finite")
            out[str(name)] = (float(pair[0]), float(pair[1]))
        return out

    def save(
        self, key: str, ranges: Mapping[str, tuple[float, float]], meta: Mapping[str, Any]
    ) -> Path:
        path = self.path(key)
        doc = {
            "format": CACHE_FORMAT,
            "key": key,
            "meta": dict(meta),
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in sorted(ranges.items())},
        }
        atomic_write_bytes(path, json.dumps(doc, indent=1, default=str).encode())
        return path
