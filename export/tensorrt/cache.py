"""Engine cache: the key (:class:`EngineKey`), :func:`store`, the verified :func:`lookup` and
:func:`why_build`. Why each key field, and the lookup rule: docs/export.md (the engine cache).

The file name is :func:`mrm_edge.artifacts.engine_filename`; reading a sidecar and checking an
engine against this GPU (what the runtime needs) is
:mod:`mrm_edge.runtime.backends.tensorrt.engine_file`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mrm_edge.runtime.backends.tensorrt.engine_file import (
    SIDECAR_FORMAT,
    EngineRefused,
    read_engine_sidecar,
    verify_engine_file,
)

from mrm_edge.artifacts import engine_filename, sidecar_path
from mrm_edge.fileio import atomic_write_bytes

KEY_FORMAT = 2  # bump when the meaning of a key field changes: old engines then miss
DIGEST_CHARS = 16  # 64 bits: collisions are irrelevant, and lookup() compares all fields anyway


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes two engines different (why each field: docs/export.md). Built by
    ``builder.make_key`` from checked :class:`BuildOptions` and the probed TensorRT and GPU."""

    onnx_sha256: str
    gpu_name: str | None
    compute_capability: str | None
    trt_version: str
    precision: str
    profile: tuple[int, int, int]
    dla_core: int | None = None
    workspace_bytes: int = 1 << 30
    strongly_typed: bool = True
    calibration: str | None = None
    flavour: str = "tensorrt"
    compute_targets: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The key as JSON-ready data (what the sidecar records and the digest hashes)."""
        d = asdict(self)
        d["profile"] = list(self.profile)
        if self.compute_targets is not None:
            d["compute_targets"] = list(self.compute_targets)
        d["format"] = KEY_FORMAT
        return d

    def digest(self) -> str:
        """Short, stable hex digest: SHA-256 of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]

    def mismatches(self, recorded: dict[str, Any]) -> list[str]:
        """Names of the fields where ``recorded`` (a sidecar's key) differs from this key."""
        mine = self.to_dict()
        return sorted(k for k in set(mine) | set(recorded) if mine.get(k) != recorded.get(k))


def probe_cache(out_dir: Path, key: EngineKey) -> str:
    """Whether the engine of ``key`` in ``out_dir`` is usable: ``"hit"``, else why not."""
    path = Path(out_dir) / engine_filename(key)
    if not path.exists() and not sidecar_path(path).exists():
        return "not built yet"
    try:
        sidecar = read_engine_sidecar(path)
        diff = key.mismatches(sidecar["key"])
        if diff:
            return f"sidecar key differs in {', '.join(diff)}"
        verify_engine_file(path, sidecar)
    except EngineRefused as e:
        return str(e)
    return "hit"


def lookup(out_dir: Path, key: EngineKey) -> Path | None:
    """The cached engine for ``key`` in ``out_dir`` if, and only if, it verifies; else None."""
    if probe_cache(out_dir, key) != "hit":
        return None
    return Path(out_dir) / engine_filename(key)


def store(
    out_dir: Path, key: EngineKey, engine: bytes, facts: dict[str, Any] | None = None
) -> Path:
    """Write ``engine`` and its sidecar under the key's name in ``out_dir``; return the path.

    The engine is written first, the sidecar last: until the sidecar exists (with the
    engine's SHA-256) the entry is a miss.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / engine_filename(key)
    side = sidecar_path(path)
    with contextlib.suppress(FileNotFoundError):
        side.unlink()  # an old sidecar must not vouch for the new bytes while they are written
    atomic_write_bytes(path, bytes(engine))
    record = {
        "format": SIDECAR_FORMAT,
        "digest": key.digest(),
        "key": key.to_dict(),
        "engine_file": path.name,
        "engine_sha256": hashlib.sha256(engine).hexdigest(),
        "engine_bytes": len(engine),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build": facts or {},
    }
    atomic_write_bytes(side, (json.dumps(record, indent=2) + "\n").encode())
    return path


def why_build(out_dir: Path, key: EngineKey) -> str:
    """Why ``key`` has no usable engine in ``out_dir`` (``"hit"`` when it has one).

    An engine built elsewhere sits under another name (the key differs), so besides the
    key's own entry the other engines of the same precision are read and the fields that
    differ are named: "built for another GPU / TensorRT / ONNX" is the usual reason to rebuild.
    """
    reason = probe_cache(out_dir, key)
    if reason != "not built yet":
        return reason
    mine = key.to_dict()
    others: list[str] = []
    for path in sorted(Path(out_dir).glob(f"model.{key.precision}.*.engine")):
        try:
            recorded = read_engine_sidecar(path)["key"]
        except EngineRefused as e:
            others.append(str(e))
            continue
        diff = key.mismatches(recorded)
        shown = ", ".join(
            f"{k} {_short(recorded.get(k))} (here {_short(mine.get(k))})" for k in diff
        )
        others.append(f"{path.name} differs in {shown}")
    if not others:
        return "not built yet"
    return "no engine for this GPU, TensorRT and ONNX: " + "; ".join(others)


def _short(value: Any) -> str:
    # SHA-256 digests: a 12-character prefix is enough to tell them apart.
    if isinstance(value, str) and len(value) == 64:
        return repr(value[:12] + "...")
    return repr(value)
