"""Loading a serialized engine for the TensorRT backend: with the flavour its sidecar names
(``key["flavour"]``, ``tensorrt`` when absent), why one does not load (TensorRT's log and
TensorRT-RTX's ``get_engine_validity``), and TensorRT-RTX's runtime cache beside the engine
(docs/export.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mrm_edge.runtime.backends.base import BackendUnavailable
from mrm_edge.runtime.backends.tensorrt.capability import (
    DISPLAY,
    FLAVOURS,
    RTX,
    STANDARD,
    flavour_of,
    import_tensorrt,
    probe_gpu,
    probe_tensorrt,
)
from mrm_edge.runtime.backends.tensorrt.engine_file import (
    EngineRefused,
    check_engine,
    read_engine_sidecar,
)

from mrm_edge.errors import first_line
from mrm_edge.fileio import atomic_write_bytes

log = logging.getLogger("mrm_edge.runtime.backends.tensorrt")


class EngineUnusable(EngineRefused, BackendUnavailable):
    """An engine refused here (another GPU / TensorRT, bytes that differ from its sidecar).

    Also a BackendUnavailable, so ``activate_backend`` moves on to the next option with the
    reason instead of stopping the monitor; and still an EngineRefused for callers of the
    engine cache's vocabulary.
    """

    def __init__(self, reason: str) -> None:
        BackendUnavailable.__init__(self, "tensorrt", reason)


class EngineNotLoadable(BackendUnavailable, ValueError):
    """TensorRT itself could not deserialize the engine (corrupt, or built by another
    TensorRT / GPU and not verified): a bad file (ValueError) that ``auto`` can skip."""

    def __init__(self, reason: str) -> None:
        BackendUnavailable.__init__(self, "tensorrt", reason)


MALFORMED_ENGINE = 32  # EngineInvalidityDiagnostics.MALFORMED_ENGINE in TensorRT-RTX 1.7
_NO_GPU_SIGNS = (
    "cuda driver version is insufficient",
    "no cuda-capable device",
    "cudaerror 35",
    "cudaerror 100",
)


def make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that keeps warnings and errors (``.messages``) and forwards them to
    Python logging, so a failed build or load can say why in one line."""

    class KeepingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # pybind11 trampolines need the base __init__
            self.messages: list[tuple[int, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            if level <= int(trt.ILogger.Severity.WARNING):
                self.messages.append((level, str(msg).strip()))
                del self.messages[:-50]  # only the recent ones explain a failure
                error = level <= int(trt.ILogger.Severity.ERROR)
                log.log(logging.ERROR if error else logging.WARNING, "TensorRT: %s", msg)

        def errors(self) -> list[str]:
            return [m for level, m in self.messages if level <= int(trt.ILogger.Severity.ERROR)]

    return KeepingLogger()


def malformed(trt: Any, runtime: Any, data: bytes) -> bool:
    """True when TensorRT says the bytes are no engine at all (needs no GPU)."""
    if not hasattr(runtime, "get_engine_validity"):
        return False  # standard TensorRT 10 has no such check
    try:
        _validity, diagnostics = runtime.get_engine_validity(data)
    except Exception:
        return False  # the check is advisory: deserialization still decides
    flag = getattr(getattr(trt, "EngineInvalidityDiagnostics", None), "MALFORMED_ENGINE", None)
    return bool(int(diagnostics) & int(flag if flag is not None else MALFORMED_ENGINE))


def why_not_loaded(flavour: str, path: Path, logger: Any) -> tuple[str, bool]:
    """``(one line, no_gpu)``: why ``deserialize_cuda_engine`` returned None, from what
    TensorRT logged; ``no_gpu`` when the cause is the machine (no usable GPU / driver), not
    the file."""
    name = DISPLAY.get(flavour, flavour)
    errors = logger.errors() if hasattr(logger, "errors") else []
    detail = next((e for e in errors if any(s in e.lower() for s in _NO_GPU_SIGNS)), None)
    if detail is not None:
        why = f"{path.name}: {name} found no usable CUDA GPU / driver to load it on"
        return f"{why} ({_clip(detail)})", True
    said = f" ({_clip(errors[-1])})" if errors else ""
    why = f"{path.name}: {name} cannot deserialize it (corrupt, or built by another {name}"
    return f"{why} version / GPU){said}", False


def _clip(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def runtime_cache_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".runtime-cache")


class RuntimeCache:
    """TensorRT-RTX's JIT runtime cache for one engine, persisted beside it.

    ``config`` is the ``IRuntimeConfig`` to create the execution context with."""

    def __init__(self, engine: Any, engine_path: Path, notes: list[str]) -> None:
        self.path = runtime_cache_path(Path(engine_path))
        self._notes = notes
        self.config = engine.create_runtime_config()
        self.cache = self.config.create_runtime_cache()
        self.loaded = False
        if self.path.is_file():
            try:
                self.loaded = bool(self.cache.deserialize(self.path.read_bytes()))
                why = "another GPU, driver or TensorRT-RTX, or damaged"
            except Exception as e:  # unreadable file or a binding error: never fatal
                why = first_line(e)
            if not self.loaded:
                self._note(f"{self.path.name}: runtime cache not used ({why}); rebuilt on use")
        self.config.set_runtime_cache(self.cache)

    def _note(self, text: str) -> None:
        self._notes.append(text)
        log.warning(text)

    def save(self) -> None:
        """Write the cache atomically beside the engine; a failure is a note."""
        try:
            data = bytes(self.cache.serialize())
            atomic_write_bytes(self.path, data)
        except Exception as e:  # read-only model directory, full disk: carry on
            self._note(f"{self.path.name}: runtime cache not saved ({first_line(e)})")


def flavour_module(engine_path: Path, trt: Any) -> tuple[Any, str]:
    """``(module, flavour)`` for the flavour the engine's sidecar names (``tensorrt`` when it
    names none): ``trt`` when given and of that flavour, else the flavour's module imported.
    :class:`EngineUnusable` when the sidecar is missing or corrupt."""
    try:
        sidecar = read_engine_sidecar(engine_path)
    except EngineRefused as e:
        raise EngineUnusable(str(e)) from e
    flavour = str(sidecar["key"].get("flavour") or STANDARD)
    if flavour not in FLAVOURS:
        raise EngineUnusable(
            f"{engine_path.name}: sidecar names TensorRT flavour {flavour!r}, "
            f"expected one of {', '.join(FLAVOURS)}"
        )
    if trt is not None:
        have = flavour_of(trt)
        if have != flavour:
            name = getattr(trt, "__name__", type(trt).__name__)
            raise EngineUnusable(
                f"{engine_path.name} was built by {DISPLAY[flavour]}, but the TensorRT module "
                f"given is {DISPLAY[have]} ({name})"
            )
        return trt, flavour
    try:
        return import_tensorrt(flavour), flavour
    except Exception as e:
        raise BackendUnavailable("tensorrt", str(e)) from e


def verify(engine_path: Path, cuda: Any, trt: Any, flavour: str) -> None:
    """Refuse an engine built for another GPU / version (GPU 0), naming what built it."""
    gpu, reason = probe_gpu(0, cuda)
    if gpu is None:
        raise BackendUnavailable("tensorrt", str(reason))
    # Both flavours' versions: the refusal says which flavour and targets the engine needs,
    # and whether that flavour is installed here at all.
    infos = {f: probe_tensorrt(trt) if f == flavour else probe_tensorrt(None, f) for f in FLAVOURS}
    versions = {f: i.version if i.available else None for f, i in infos.items()}
    try:
        check_engine(
            engine_path, gpu.name, gpu.compute_capability, versions[STANDARD], versions[RTX]
        )
    except EngineRefused as e:
        raise EngineUnusable(str(e)) from e
