"""Engine cache: the key, its digest, file naming, verified lookup and the runtime's refusal.

Pure Python: no TensorRT involved (the engine bytes here are arbitrary)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from mrm_edge.export.tensorrt.cache import EngineKey, lookup, probe_cache, store, why_build
from mrm_edge.runtime.backends.tensorrt.engine_file import (
    EngineRefused,
    check_engine,
    describe_misfit,
)

from mrm_edge.artifacts import engine_filename, sidecar_path

BASE = EngineKey(
    onnx_sha256="ab" * 32,
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability="9.0",
    trt_version="10.3.0",
    precision="fp16",
    profile=(1, 8, 32),
    dla_core=None,
    workspace_bytes=1 << 30,
    strongly_typed=True,
    calibration=None,
)

# One changed value per field: every field must reach the digest.
CHANGES = {
    "onnx_sha256": "cd" * 32,
    "gpu_name": "NVIDIA A100-SXM4-40GB",
    "compute_capability": "8.0",
    "trt_version": "10.3.1",
    "precision": "int8",
    "profile": (1, 8, 64),
    "dla_core": 0,
    "workspace_bytes": 1 << 29,
    "strongly_typed": False,
    "calibration": "sha256:0123",
}


# A portable TensorRT-RTX key: no GPU, its compute targets instead.
RTX_BASE = dataclasses.replace(
    BASE,
    flavour="tensorrt-rtx",
    gpu_name=None,
    compute_capability=None,
    compute_targets=("8.0", "8.6", "8.9", "12.0"),
    trt_version="1.7.1.116",
)
RTX_CHANGES = {"flavour": "tensorrt", "compute_targets": ("7.5", "8.0", "8.6", "8.9", "12.0")}


def test_every_field_is_covered_by_the_parametrization() -> None:
    assert set(CHANGES) | set(RTX_CHANGES) == {f.name for f in dataclasses.fields(EngineKey)}


@pytest.mark.parametrize("field", sorted(RTX_CHANGES))
def test_rtx_digest_changes_with_flavour_and_targets(field: str) -> None:
    extra = {"gpu_name": "x", "compute_capability": "8.6"} if field == "flavour" else {}
    changed = dataclasses.replace(RTX_BASE, **{field: RTX_CHANGES[field]}, **extra)
    assert changed.digest() != RTX_BASE.digest()


def test_rtx_key_records_its_targets_as_a_list() -> None:
    assert RTX_BASE.to_dict()["compute_targets"] == ["8.0", "8.6", "8.9", "12.0"]


def test_rtx_engine_fits_every_target_gpu_with_the_same_version(tmp_path: Path) -> None:
    path = store(tmp_path, RTX_BASE, b"engine-bytes")
    for gpu, cc in (("NVIDIA RTX A6000", "8.6"), ("NVIDIA GeForce RTX 4090", "8.9")):
        assert check_engine(path, gpu, cc, None, "1.7.1.116")["key"]["flavour"] == "tensorrt-rtx"
    key = RTX_BASE.to_dict()
    why = describe_misfit(key, "NVIDIA H100 80GB HBM3", "9.0", "10.3.0", "1.7.1.116")
    assert why == (
        "built by TensorRT-RTX 1.7.1.116 for compute 8.0, 8.6, 8.9, 12.0, but this machine has "
        "NVIDIA H100 80GB HBM3 (compute 9.0) with TensorRT-RTX 1.7.1.116"
    )
    assert "TensorRT-RTX is not installed here" in describe_misfit(
        key, "NVIDIA RTX A6000", "8.6", "10.3.0", None
    )
    assert "with TensorRT-RTX 1.8.0" in describe_misfit(key, "RTX", "8.6", None, "1.8.0")
    with pytest.raises(EngineRefused, match=r"for compute 8\.0, 8\.6, 8\.9, 12\.0.*rebuild"):
        check_engine(path, "NVIDIA GeForce RTX 2080", "7.5", None, "1.7.1.116")


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_digest_changes_with_each_field(field: str) -> None:
    changed = dataclasses.replace(BASE, **{field: CHANGES[field]})
    assert changed.digest() != BASE.digest()


@pytest.mark.parametrize("profile", [(1, 8, 33), (2, 8, 32), (1, 9, 32)])
def test_digest_changes_with_each_profile_entry(profile: tuple[int, int, int]) -> None:
    assert dataclasses.replace(BASE, profile=profile).digest() != BASE.digest()


def test_digest_is_stable_across_runs_and_versions() -> None:
    # A golden value: if this changes, every user's cached engine silently misses. Bump
    # KEY_FORMAT deliberately instead, and update this value with it.
    assert BASE.digest() == "0b5af7088947d0cf"  # KEY_FORMAT 2
    assert (
        EngineKey(**{**dataclasses.asdict(BASE), "profile": [1, 8, 32]}).digest() == BASE.digest()
    )


def test_filename_and_sidecar_naming() -> None:
    name = engine_filename(BASE)
    assert name == f"model.fp16.{BASE.digest()}.engine"
    assert sidecar_path(Path("/x") / name) == Path("/x") / f"{name}.json"


def test_store_then_lookup_hits(tmp_path: Path) -> None:
    path = store(tmp_path, BASE, b"engine-bytes", {"build_seconds": 1.5})
    assert lookup(tmp_path, BASE) == path
    side = json.loads(sidecar_path(path).read_text())
    assert side["key"] == BASE.to_dict()
    assert side["digest"] == BASE.digest()
    assert side["engine_bytes"] == len(b"engine-bytes")
    assert side["build"] == {"build_seconds": 1.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, f"{path.name}.json"])


def test_lookup_misses_when_nothing_was_built(tmp_path: Path) -> None:
    assert lookup(tmp_path, BASE) is None
    assert probe_cache(tmp_path, BASE) == "not built yet"


def test_another_key_misses(tmp_path: Path) -> None:
    store(tmp_path, BASE, b"engine-bytes")
    assert lookup(tmp_path, dataclasses.replace(BASE, workspace_bytes=1 << 28)) is None


def test_sidecar_recording_another_key_under_this_name_misses(tmp_path: Path) -> None:
    # A file copied or renamed into place: the name says BASE, the sidecar says otherwise.
    path = store(tmp_path, BASE, b"engine-bytes")
    side = json.loads(sidecar_path(path).read_text())
    side["key"]["gpu_name"] = "NVIDIA A100"
    sidecar_path(path).write_text(json.dumps(side))
    reason = probe_cache(tmp_path, BASE)
    assert reason != "hit" and "gpu_name" in reason


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: sidecar_path(p).write_text('{"format": 1, "key": '), "not readable JSON"),
        (lambda p: sidecar_path(p).write_text("[]"), "no 'key' object"),
        (lambda p: sidecar_path(p).unlink(), "no sidecar"),
        (lambda p: p.unlink(), "engine file missing"),
        (lambda p: p.write_bytes(b"engine-bytez"), "SHA-256 differs"),
        (lambda p: p.write_bytes(b"engine-"), "SHA-256 differs"),
    ],
)
def test_damaged_entries_miss_with_the_reason(tmp_path: Path, damage, reason: str) -> None:
    path = store(tmp_path, BASE, b"engine-bytes")
    damage(path)
    why = probe_cache(tmp_path, BASE)
    assert why != "hit" and reason in why
    assert lookup(tmp_path, BASE) is None


def test_store_replaces_an_old_entry(tmp_path: Path) -> None:
    store(tmp_path, BASE, b"old")
    path = store(tmp_path, BASE, b"new")
    assert path.read_bytes() == b"new"
    assert lookup(tmp_path, BASE) == path


def test_check_engine_accepts_the_machine_it_was_built_for(tmp_path: Path) -> None:
    path = store(tmp_path, BASE, b"engine-bytes")
    side = check_engine(path, BASE.gpu_name, BASE.compute_capability, BASE.trt_version)
    assert side["key"]["precision"] == "fp16"


@pytest.mark.parametrize(
    ("gpu", "cc", "trt"),
    [
        ("NVIDIA A100-SXM4-40GB", "8.0", "10.3.0"),
        ("NVIDIA H100 80GB HBM3", "9.0", "10.8.0"),
        ("NVIDIA H100 80GB HBM3", "8.9", "10.3.0"),
    ],
)
def test_check_engine_refuses_another_gpu_or_tensorrt(
    tmp_path: Path, gpu: str, cc: str, trt: str
) -> None:
    path = store(tmp_path, BASE, b"engine-bytes")
    with pytest.raises(EngineRefused) as e:
        check_engine(path, gpu, cc, trt)
    msg = str(e.value)
    assert "\n" not in msg
    assert BASE.gpu_name in msg and gpu in msg and trt in msg
    assert "rebuild" in msg


def test_check_engine_refuses_tampered_or_unvouched_engines(tmp_path: Path) -> None:
    path = store(tmp_path, BASE, b"engine-bytes")
    path.write_bytes(b"other")
    with pytest.raises(EngineRefused, match="SHA-256 differs"):
        check_engine(path, BASE.gpu_name, BASE.compute_capability, BASE.trt_version)
    bare = tmp_path / "model.fp16.engine"
    bare.write_bytes(b"x")
    with pytest.raises(EngineRefused, match="no sidecar"):
        check_engine(bare, BASE.gpu_name, BASE.compute_capability, BASE.trt_version)


def test_why_build_names_what_the_engines_already_there_were_built_for(tmp_path: Path) -> None:
    assert why_build(tmp_path, BASE) == "not built yet"
    store(tmp_path, BASE, b"engine-bytes")
    assert why_build(tmp_path, BASE) == "hit"
    other = dataclasses.replace(BASE, trt_version="10.4.0", onnx_sha256="cd" * 32)
    why = why_build(tmp_path, other)
    assert why.startswith("no engine for this GPU, TensorRT and ONNX: ")
    assert f"{engine_filename(BASE)} differs in onnx_sha256 'abababababab...'" in why
    assert "trt_version '10.3.0' (here '10.4.0')" in why
    # Engines of another precision are not candidates and are not listed.
    assert why_build(tmp_path, dataclasses.replace(BASE, precision="int8")) == "not built yet"


def test_describe_misfit_names_gpu_capability_and_version() -> None:
    key = BASE.to_dict()
    assert describe_misfit(key, "NVIDIA H100 80GB HBM3", "9.0", "10.3.0") is None
    why = describe_misfit(key, "NVIDIA H100 80GB HBM3", "8.9", "10.3.0")
    assert why == (
        "built for NVIDIA H100 80GB HBM3 (compute 9.0) with TensorRT 10.3.0, but this machine "
        "has NVIDIA H100 80GB HBM3 (compute 8.9) with TensorRT 10.3.0"
    )
