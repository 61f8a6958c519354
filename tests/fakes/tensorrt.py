"""TEST DOUBLES for TensorRT and the CUDA runtime. Not the real libraries.

``FakeTensorRT`` stands in for the ``tensorrt`` module and ``FakeCudaRuntime`` for cuda-python's
``cudart``. They implement only the API surface this project calls, with the behaviour the
code depends on, so that tests can assert on real behaviour rather than canned answers:

FakeTensorRT
  - records every builder call in order (``trt.calls``) and every runtime call
    (``trt.exec_calls``);
  - enforces what real TensorRT enforces and this project could get wrong: precision flags
    are refused on a strongly typed network, a dynamic input needs an optimization profile
    matching the network's dims, implicit INT8 needs a calibrator, DLA cores must exist,
    TensorRT 11 mode has no FP16/INT8 flags and no ``int8_calibrator``, an engine only
    deserializes under the TensorRT version that built it;
  - "serializes" an engine as a small header plus the ONNX bytes, and "executes" it by
    reading the input from (fake) device memory at the address set on the context, calling
    a numpy function (``execute_fn``, default: ONNX Runtime on the embedded ONNX), and
    writing the output to the output address. Execution is enqueued on a fake stream, with
    the addresses and shape captured at enqueue time, as TensorRT does.

FakeCudaRuntime
  - "device" and pinned memory are host memory at real addresses (ctypes), so numpy views,
    ``memmove`` copies and TensorRT's reads/writes act on actual bytes; every access is
    bounds-checked against the allocation it falls in;
  - streams are **deferred**: nothing runs until the host synchronizes (stream or event
    sync); then queued work runs respecting event dependencies, either in enqueue order or
    in a seeded random interleaving of streams (``order="random"``). Missing dependencies or
    missing syncs therefore produce wrong numbers in tests instead of passing by luck;
  - events have CUDA's "last record" semantics; stream capture records work into graphs
    that replay the captured operations (same addresses) on launch;
  - host-blocking syncs are logged (``syncs``) and allocations are tracked (``live()``) so
    tests can assert on overlap and leaks;
  - a fake device clock (``clock_ms``) advances by ``op_ms(label)`` for every copy or kernel
    that runs (event records and waits cost nothing); timing events stamp it when they
    fire, and ``cudaEventElapsedTime`` returns the difference. The figures say which work
    lay between two events, nothing about speed.

Nothing here talks to a GPU. What passes against these doubles has NOT been shown to work
against real TensorRT or CUDA; ``mrm-edge doctor`` is the check for that.
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# =========================================================================== CUDA runtime


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorNotReady = 600
    cudaErrorStreamCaptureInvalidated = 901


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


class cudaStreamCaptureMode(enum.IntEnum):
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


@dataclass
class FakeDeviceProp:
    name: bytes = b"Fake GPU (test double)"
    major: int = 9
    minor: int = 0
    totalGlobalMem: int = 80 * 2**30


class FakeCudaFault(AssertionError):
    """The code under test did something that would be an illegal access on a real GPU."""


@dataclass
class _Op:
    seq: int
    label: str
    run: Callable[[], None]
    ready: Callable[[], bool] = lambda: True


class FakeStream:
    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.queue: deque[_Op] = deque()
        self.capture: list[_Op] | None = None
        self.capture_invalid = False
        self.destroyed = False

    def __int__(self) -> int:
        return self.ident

    def __repr__(self) -> str:
        return f"FakeStream({self.ident})"


class FakeEvent:
    def __init__(self, ident: int, timing: bool = False) -> None:
        self.ident = ident
        self.recorded = 0  # number of cudaEventRecord calls
        self.completed = 0  # highest record generation that has executed
        self.destroyed = False
        self.timing = timing  # created without cudaEventDisableTiming
        self.time_ms: float | None = None  # fake device clock when the last record fired


@dataclass
class FakeGraph:
    ops: list[_Op]


class FakeCudaRuntime:
    """A stand-in for ``cuda.bindings.runtime`` (test double). See the module docstring."""

    cudaError_t = cudaError_t
    cudaMemcpyKind = cudaMemcpyKind
    cudaStreamCaptureMode = cudaStreamCaptureMode
    cudaStreamNonBlocking = 1
    cudaEventDefault = 0
    cudaEventDisableTiming = 2

    def __init__(
        self,
        devices: list[FakeDeviceProp] | None = None,
        order: str = "in_order",
        seed: int = 0,
        op_ms: Callable[[str], float] = lambda label: 0.25,
    ) -> None:
        if order not in ("in_order", "random"):
            raise ValueError(order)
        self.devices = [FakeDeviceProp()] if devices is None else devices
        self.order = order
        self._rng = random.Random(seed)
        self._seq = itertools.count()
        self._ids = itertools.count(0x1000)
        self._blocks: dict[int, tuple[str, Any]] = {}  # addr -> (kind, ctypes buffer)
        self.streams: dict[int, FakeStream] = {}
        self.events: dict[int, FakeEvent] = {}
        self.graph_execs: dict[int, FakeGraph] = {}
        self.graphs: dict[int, FakeGraph] = {}
        self.executed: list[str] = []  # op labels in execution order
        self.enqueued: list[str] = []  # op labels in enqueue order
        self.syncs: list[tuple[str, int]] = []  # host-blocking waits
        self.current_device = 0
        self.op_ms = op_ms  # fake device time of one copy / kernel, by its label
        self.clock_ms = 0.0

    # ------------------------------------------------------------------ device

    def cudaGetDeviceCount(self) -> tuple[cudaError_t, int]:
        if not self.devices:
            return cudaError_t.cudaErrorNoDevice, 0
        return cudaError_t.cudaSuccess, len(self.devices)

    def cudaGetDeviceProperties(self, device: int) -> tuple[cudaError_t, Any]:
        if not 0 <= device < len(self.devices):
            return cudaError_t.cudaErrorInvalidDevice, None
        return cudaError_t.cudaSuccess, self.devices[device]

    def cudaSetDevice(self, device: int) -> tuple[cudaError_t]:
        if not 0 <= device < len(self.devices):
            return (cudaError_t.cudaErrorInvalidDevice,)
        self.current_device = device
        return (cudaError_t.cudaSuccess,)

    # ------------------------------------------------------------------ memory

    def _alloc(self, kind: str, nbytes: int) -> tuple[cudaError_t, int]:
        if nbytes <= 0:
            return cudaError_t.cudaErrorInvalidValue, 0
        buf = (ctypes.c_byte * nbytes)()
        addr = ctypes.addressof(buf)
        self._blocks[addr] = (kind, buf)
        return cudaError_t.cudaSuccess, addr

    def _free(self, kind: str, addr: int) -> tuple[cudaError_t]:
        block = self._blocks.get(int(addr))
        if block is None or block[0] != kind:
            return (cudaError_t.cudaErrorInvalidValue,)
        del self._blocks[int(addr)]
        return (cudaError_t.cudaSuccess,)

    def cudaMalloc(self, nbytes: int) -> tuple[cudaError_t, int]:
        return self._alloc("device", nbytes)

    def cudaFree(self, addr: int) -> tuple[cudaError_t]:
        return self._free("device", addr)

    def cudaMallocHost(self, nbytes: int) -> tuple[cudaError_t, int]:
        return self._alloc("pinned", nbytes)

    def cudaFreeHost(self, addr: int) -> tuple[cudaError_t]:
        return self._free("pinned", addr)

    def region(self, addr: int, nbytes: int) -> str:
        """Kind ("device" / "pinned") of the allocation holding [addr, addr+nbytes)."""
        for start, (kind, buf) in self._blocks.items():
            if start <= addr and addr + nbytes <= start + ctypes.sizeof(buf):
                return kind
        raise FakeCudaFault(f"access to unallocated memory [{addr:#x}, +{nbytes})")

    def read(self, addr: int, nbytes: int, kind: str = "device") -> bytes:
        if self.region(addr, nbytes) != kind:
            raise FakeCudaFault(f"expected {kind} memory at {addr:#x}")
        return ctypes.string_at(addr, nbytes)

    def write(self, addr: int, data: bytes, kind: str = "device") -> None:
        if self.region(addr, len(data)) != kind:
            raise FakeCudaFault(f"expected {kind} memory at {addr:#x}")
        ctypes.memmove(addr, data, len(data))

    def live(self) -> dict[str, int]:
        """Live allocations, streams, events and graphs (leak checks)."""
        kinds = [k for k, _ in self._blocks.values()]
        return {
            "device": kinds.count("device"),
            "pinned": kinds.count("pinned"),
            "streams": sum(not s.destroyed for s in self.streams.values()),
            "events": sum(not e.destroyed for e in self.events.values()),
            "graph_execs": len(self.graph_execs),
            "graphs": len(self.graphs),
        }

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: cudaMemcpyKind, stream: Any):
        want = {
            cudaMemcpyKind.cudaMemcpyHostToDevice: ("pinned", "device"),
            cudaMemcpyKind.cudaMemcpyDeviceToHost: ("device", "pinned"),
            cudaMemcpyKind.cudaMemcpyDeviceToDevice: ("device", "device"),
        }.get(kind)
        if want is None:
            return (cudaError_t.cudaErrorInvalidValue,)
        # Strict on purpose: async copies from pageable memory are synchronous on real CUDA,
        # which would silently kill the overlap this project relies on.
        try:
            if self.region(int(src), count) != want[0] or self.region(int(dst), count) != want[1]:
                return (cudaError_t.cudaErrorInvalidValue,)
        except FakeCudaFault:
            return (cudaError_t.cudaErrorInvalidValue,)
        s = self._stream(stream)
        dst, src = int(dst), int(src)
        self.enqueue(s, f"{kind.name[10:]} {count}B", lambda: ctypes.memmove(dst, src, count))
        return (cudaError_t.cudaSuccess,)

    # ------------------------------------------------------------------ streams and events

    def _stream(self, stream: Any) -> FakeStream:
        s = self.streams.get(int(stream))
        if s is None or s.destroyed:
            raise FakeCudaFault(f"unknown or destroyed stream {stream!r}")
        return s

    def stream_for_handle(self, handle: int) -> FakeStream:
        return self._stream(handle)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[cudaError_t, FakeStream]:
        s = FakeStream(next(self._ids))
        self.streams[s.ident] = s
        return cudaError_t.cudaSuccess, s

    def cudaStreamCreate(self) -> tuple[cudaError_t, FakeStream]:
        return self.cudaStreamCreateWithFlags(0)

    def cudaStreamDestroy(self, stream: Any) -> tuple[cudaError_t]:
        s = self._stream(stream)
        self._drain(lambda: not s.queue)  # real CUDA lets queued work finish first
        s.destroyed = True
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(self, stream: Any) -> tuple[cudaError_t]:
        s = self._stream(stream)
        self.syncs.append(("stream", s.ident))
        self._drain(lambda: not s.queue)
        return (cudaError_t.cudaSuccess,)

    def cudaEventCreateWithFlags(self, flags: int) -> tuple[cudaError_t, FakeEvent]:
        e = FakeEvent(next(self._ids), timing=not int(flags) & self.cudaEventDisableTiming)
        self.events[e.ident] = e
        return cudaError_t.cudaSuccess, e

    def cudaEventDestroy(self, event: FakeEvent) -> tuple[cudaError_t]:
        if event.destroyed:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        event.destroyed = True
        return (cudaError_t.cudaSuccess,)

    def cudaEventRecord(self, event: FakeEvent, stream: Any) -> tuple[cudaError_t]:
        event.recorded += 1
        gen = event.recorded

        def fire() -> None:
            event.completed = max(event.completed, gen)
            event.time_ms = self.clock_ms

        self.enqueue(self._stream(stream), f"record e{event.ident}#{gen}", fire)
        return (cudaError_t.cudaSuccess,)

    def cudaEventSynchronize(self, event: FakeEvent) -> tuple[cudaError_t]:
        self.syncs.append(("event", event.ident))
        gen = event.recorded
        self._drain(lambda: event.completed >= gen)
        return (cudaError_t.cudaSuccess,)

    def cudaEventElapsedTime(self, start: FakeEvent, end: FakeEvent) -> tuple[cudaError_t, float]:
        # As CUDA: timing disabled on either event is an invalid handle; an event not yet
        # recorded, or whose last record has not run, is not ready.
        if not (start.timing and end.timing) or start.destroyed or end.destroyed:
            return cudaError_t.cudaErrorInvalidResourceHandle, 0.0
        for e in (start, end):
            if e.recorded == 0 or e.completed < e.recorded or e.time_ms is None:
                return cudaError_t.cudaErrorNotReady, 0.0
        return cudaError_t.cudaSuccess, float(end.time_ms - start.time_ms)

    # ------------------------------------------------------------------ graphs

    def cudaStreamBeginCapture(self, stream: Any, mode: Any) -> tuple[cudaError_t]:
        s = self._stream(stream)
        s.capture, s.capture_invalid = [], False
        return (cudaError_t.cudaSuccess,)

    def cudaStreamEndCapture(self, stream: Any) -> tuple[cudaError_t, Any]:
        s = self._stream(stream)
        ops, invalid = s.capture, s.capture_invalid
        s.capture, s.capture_invalid = None, False
        if ops is None or invalid:
            return cudaError_t.cudaErrorStreamCaptureInvalidated, None
        g = FakeGraph(ops)
        self.graphs[id(g)] = g
        return cudaError_t.cudaSuccess, g

    def cudaGraphInstantiate(self, graph: FakeGraph, flags: int = 0) -> tuple[cudaError_t, Any]:
        g = FakeGraph(list(graph.ops))
        self.graph_execs[id(g)] = g
        return cudaError_t.cudaSuccess, g

    def cudaGraphDestroy(self, graph: FakeGraph) -> tuple[cudaError_t]:
        return (
            (cudaError_t.cudaSuccess,)
            if self.graphs.pop(id(graph), None)
            else (cudaError_t.cudaErrorInvalidValue,)
        )

    def cudaGraphExecDestroy(self, exec_: FakeGraph) -> tuple[cudaError_t]:
        return (
            (cudaError_t.cudaSuccess,)
            if self.graph_execs.pop(id(exec_), None)
            else (cudaError_t.cudaErrorInvalidValue,)
        )

    def cudaGraphLaunch(self, exec_: FakeGraph, stream: Any) -> tuple[cudaError_t]:
        if id(exec_) not in self.graph_execs:
            return (cudaError_t.cudaErrorInvalidValue,)
        s = self._stream(stream)
        for op in exec_.ops:
            self.enqueue(s, f"graph:{op.label}", op.run, ready=op.ready)
        return (cudaError_t.cudaSuccess,)

    # ------------------------------------------------------------------ the "device"

    def enqueue(
        self,
        stream: FakeStream,
        label: str,
        run: Callable[[], Any],
        ready: Callable[[], bool] | None = None,
    ) -> None:
        op = _Op(next(self._seq), label, run, ready or (lambda: True))
        if stream.capture is not None:
            stream.capture.append(op)
            return
        stream.queue.append(op)
        self.enqueued.append(label)

    def _drain(self, done: Callable[[], bool]) -> None:
        """Run queued work until ``done()``: the fake device only progresses while the host
        waits, so anything read before a sync is stale."""
        while not done():
            heads = [s for s in self.streams.values() if s.queue and s.queue[0].ready()]
            if not heads:
                pending = {
                    s.ident: [o.label for o in s.queue] for s in self.streams.values() if s.queue
                }
                raise FakeCudaFault(f"deadlock: host waits but no queued work can run: {pending}")
            if self.order == "random":
                s = self._rng.choice(heads)
            else:
                s = min(heads, key=lambda st: st.queue[0].seq)
            op = s.queue.popleft()
            op.run()
            if not op.label.startswith(("record ", "wait ")):
                self.clock_ms += self.op_ms(op.label)
            self.executed.append(op.label)


# =========================================================================== TensorRT

MAGIC = b"FAKETRT1\n"


class FakeILogger:
    """``trt.ILogger``: subclass and implement ``log(severity, msg)``."""

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:  # pragma: no cover - overridden
        pass


class FakeLogger(FakeILogger):
    INTERNAL_ERROR = FakeILogger.Severity.INTERNAL_ERROR
    ERROR = FakeILogger.Severity.ERROR
    WARNING = FakeILogger.Severity.WARNING
    INFO = FakeILogger.Severity.INFO
    VERBOSE = FakeILogger.Severity.VERBOSE

    def __init__(self, min_severity: Any = FakeILogger.Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity
        self.messages: list[tuple[Any, str]] = []

    def log(self, severity: Any, msg: str) -> None:
        self.messages.append((severity, msg))


@dataclass
class FakeTensor:
    name: str
    shape: tuple[int, ...]
    dtype: Any


class FakeNetwork:
    def __init__(self, strongly_typed: bool) -> None:
        self.strongly_typed = strongly_typed
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []
        self.onnx_bytes: bytes | None = None
        self.has_qdq = False

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    @property
    def num_layers(self) -> int:
        """One layer per ONNX node parsed (real TensorRT adds a few, e.g. for constants)."""
        if self.onnx_bytes is None:
            return 0
        import onnx

        return len(onnx.load_from_string(self.onnx_bytes).graph.node)

    def get_input(self, i: int) -> FakeTensor:
        return self.inputs[i]

    def get_output(self, i: int) -> FakeTensor:
        return self.outputs[i]


class FakeParserError:
    def __init__(self, desc: str, node: str = "", op: str = "") -> None:
        self._desc, self._node, self._op = desc, node, op

    def desc(self) -> str:
        return self._desc

    def node_name(self) -> str:
        return self._node

    def node_operator(self) -> str:
        return self._op

    def __str__(self) -> str:
        return self._desc


class FakeOnnxParser:
    def __init__(self, trt: FakeTensorRT, network: FakeNetwork, logger: Any) -> None:
        self._trt, self._network = trt, network
        self._errors: list[FakeParserError] = []
        trt.calls.append(("OnnxParser",))

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, i: int) -> FakeParserError:
        return self._errors[i]

    def clear_errors(self) -> None:
        self._errors = []

    def parse_from_file(self, path: str) -> bool:
        self._trt.calls.append(("parse_from_file", str(path)))
        return self._parse(Path(path).read_bytes())

    def parse(self, model: bytes, path: str | None = None) -> bool:
        self._trt.calls.append(("parse", len(model)))
        return self._parse(bytes(model))

    def _parse(self, data: bytes) -> bool:
        if self._trt.parse_errors:
            self._errors = [FakeParserError(*e) for e in self._trt.parse_errors]
            return False
        import onnx  # the double reads the graph's I/O; tests have onnx installed

        model = onnx.load_from_string(data)
        inits = {t.name for t in model.graph.initializer}

        def shape(v: Any) -> tuple[int, ...]:
            dims = v.type.tensor_type.shape.dim
            return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)

        dt = self._trt.DataType.FLOAT
        n = self._network
        n.inputs = [
            FakeTensor(i.name, shape(i), dt) for i in model.graph.input if i.name not in inits
        ]
        n.outputs = [FakeTensor(o.name, shape(o), dt) for o in model.graph.output]
        n.has_qdq = any(
            node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node
        )
        n.onnx_bytes = data
        return True


class FakeProfile:
    def __init__(self, trt: FakeTensorRT) -> None:
        self._trt = trt
        self.shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}

    def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:
        mn, op, mx = tuple(min), tuple(opt), tuple(max)
        self._trt.calls.append(("set_shape", name, mn, op, mx))
        self.shapes[name] = (mn, op, mx)


class FakeTimingCache:
    def __init__(self, entries: int) -> None:
        self.entries = entries

    def serialize(self) -> memoryview:
        return memoryview(b"FAKECACHE:%d" % self.entries)


class FakeBuilderConfig:
    def __init__(self, trt: FakeTensorRT) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "flags", set())
        object.__setattr__(self, "profiles", [])
        object.__setattr__(self, "pool_limits", {})
        object.__setattr__(self, "timing_cache", None)
        object.__setattr__(self, "default_device_type", trt.DeviceType.GPU)
        object.__setattr__(self, "DLA_core", -1)
        object.__setattr__(self, "calibrator", None)

    def __setattr__(self, name: str, value: Any) -> None:
        trt = self._trt
        if name == "int8_calibrator":
            if not trt.int8_calibrator_supported:
                raise AttributeError(
                    "'tensorrt.IBuilderConfig' object has no attribute 'int8_calibrator'"
                )
            trt.calls.append(("int8_calibrator", type(value).__name__))
            object.__setattr__(self, "calibrator", value)
            return
        if name == "default_device_type":
            trt.calls.append(("default_device_type", value.name))
        elif name == "DLA_core":
            trt.calls.append(("DLA_core", value))
        else:
            raise AttributeError(f"FakeBuilderConfig has no settable attribute {name!r}")
        object.__setattr__(self, name, value)

    def set_flag(self, flag: Any) -> None:
        self._trt.calls.append(("set_flag", flag.name))
        self.flags.add(flag.name)

    def get_flag(self, flag: Any) -> bool:
        return flag.name in self.flags

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self._trt.calls.append(("set_memory_pool_limit", pool.name, size))
        self.pool_limits[pool.name] = size

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self._trt.calls.append(("add_optimization_profile",))
        for mn, op, mx in profile.shapes.values():
            if not (len(mn) == len(op) == len(mx)) or not all(
                a <= b <= c for a, b, c in zip(mn, op, mx, strict=True)
            ):
                return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache | None:
        data = bytes(data)
        self._trt.calls.append(("create_timing_cache", data))
        if not data:
            return FakeTimingCache(0)
        if not data.startswith(b"FAKECACHE:"):
            return None  # unreadable
        return FakeTimingCache(int(data.split(b":")[1]))

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self._trt.calls.append(("set_timing_cache", cache.entries))
        object.__setattr__(self, "timing_cache", cache)
        return True

    def get_timing_cache(self) -> FakeTimingCache:
        self._trt.calls.append(("get_timing_cache",))
        return self.timing_cache


class FakeBuilder:
    def __init__(self, trt: FakeTensorRT, logger: Any) -> None:
        self._trt, self._logger = trt, logger
        self.num_DLA_cores = trt.num_dla_cores
        trt.calls.append(("Builder",))

    def create_network(self, flags: int = 0) -> FakeNetwork:
        trt = self._trt
        trt.calls.append(("create_network", flags))
        typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        typed = typed_flag is not None and bool(flags & (1 << int(typed_flag)))
        return FakeNetwork(strongly_typed=typed or not trt.precision_flags)

    def create_builder_config(self) -> FakeBuilderConfig:
        self._trt.calls.append(("create_builder_config",))
        return FakeBuilderConfig(self._trt)

    def create_optimization_profile(self) -> FakeProfile:
        self._trt.calls.append(("create_optimization_profile",))
        return FakeProfile(self._trt)

    def _fail(self, msg: str) -> None:
        self._logger.log(self._trt.ILogger.Severity.ERROR, msg)

    def build_serialized_network(self, network: FakeNetwork, config: FakeBuilderConfig) -> Any:
        trt = self._trt
        trt.calls.append(("build_serialized_network",))
        if network.onnx_bytes is None:
            return self._fail("network has no layers (nothing parsed)")
        if trt.build_error:
            return self._fail(trt.build_error)
        if network.strongly_typed and config.flags & {"FP16", "INT8"}:
            return self._fail(
                "precision flags FP16/INT8 are not allowed with a strongly typed network"
            )
        (inp,) = network.inputs
        profile = None
        if inp.shape[0] < 0:
            matching = [p.shapes[inp.name] for p in config.profiles if inp.name in p.shapes]
            if not matching:
                return self._fail(
                    f"input '{inp.name}' is dynamic but no optimization profile sets it"
                )
            profile = matching[0]
            for s in profile:
                if len(s) != len(inp.shape) or tuple(s[1:]) != tuple(inp.shape[1:]):
                    return self._fail(f"profile shape {s} does not match input {inp.shape}")
        if "INT8" in config.flags and not network.has_qdq and config.calibrator is None:
            return self._fail("INT8 requested without Q/DQ and without a calibrator")
        if config.default_device_type == trt.DeviceType.DLA and not (
            0 <= config.DLA_core < self.num_DLA_cores
        ):
            return self._fail(f"DLA core {config.DLA_core} does not exist")
        if config.timing_cache is not None:
            config.timing_cache.entries += 1  # the build adds its tactic timings
        (out,) = network.outputs
        header = {
            "version": trt.__version__,
            "input": [inp.name, list(inp.shape)],
            "output": [out.name, list(out.shape)],
            "profile": [list(s) for s in profile] if profile else None,
            "strongly_typed": network.strongly_typed,
            "flags": sorted(config.flags),
        }
        blob = MAGIC + json.dumps(header).encode() + b"\n" + network.onnx_bytes
        return memoryview(blob)  # IHostMemory supports the buffer protocol


class FakeRuntime:
    def __init__(self, trt: FakeTensorRT, logger: Any) -> None:
        self._trt, self._logger = trt, logger
        trt.exec_calls.append(("Runtime",))

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        trt = self._trt
        data = bytes(data)
        trt.exec_calls.append(("deserialize_cuda_engine", len(data)))
        if not data.startswith(MAGIC):
            self._logger.log(trt.ILogger.Severity.ERROR, "not a serialized engine")
            return None
        head, _, onnx_bytes = data[len(MAGIC) :].partition(b"\n")
        header = json.loads(head)
        if header["version"] != trt.__version__:
            self._logger.log(trt.ILogger.Severity.ERROR, "serialization version mismatch")
            return None
        return FakeEngine(trt, header, onnx_bytes)


class FakeEngine:
    def __init__(self, trt: FakeTensorRT, header: dict[str, Any], onnx_bytes: bytes) -> None:
        self._trt = trt
        self.header = header
        self.onnx_bytes = onnx_bytes
        self.in_name, in_shape = header["input"]
        self.out_name, out_shape = header["output"]
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.profile = [tuple(s) for s in header["profile"]] if header["profile"] else None
        self.executions: list[tuple[int, int, tuple[int, ...]]] = []  # (in_ptr, out_ptr, shape) run
        self._session: Any = None
        trt.engines.append(self)

    num_io_tensors = 2
    num_optimization_profiles = 1

    def get_tensor_name(self, i: int) -> str:
        return (self.in_name, self.out_name)[i]

    def get_tensor_mode(self, name: str) -> Any:
        modes = self._trt.TensorIOMode
        return {self.in_name: modes.INPUT, self.out_name: modes.OUTPUT}.get(name, modes.NONE)

    def get_tensor_dtype(self, name: str) -> Any:
        return self._trt.DataType.FLOAT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.in_shape if name == self.in_name else self.out_shape

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        if name != self.in_name or profile_index != 0:
            raise ValueError(f"no profile shape for {name!r} / profile {profile_index}")
        return list(self.profile) if self.profile else [self.in_shape] * 3

    def create_execution_context(self, runtime_config: Any = None) -> FakeExecutionContext:
        if runtime_config is not None and self._trt.FLAVOUR != "tensorrt-rtx":
            raise TypeError("create_execution_context(): standard TensorRT takes no runtime config")
        ctx = FakeExecutionContext(self._trt, self)
        ctx.runtime_config = runtime_config
        self._trt.contexts.append(ctx)
        return ctx

    def create_runtime_config(self) -> FakeRuntimeConfig:
        """TensorRT-RTX only (``ICudaEngine.create_runtime_config``)."""
        if self._trt.FLAVOUR != "tensorrt-rtx":
            raise AttributeError("'ICudaEngine' object has no attribute 'create_runtime_config'")
        return FakeRuntimeConfig(self._trt)

    def compute(self, x: np.ndarray) -> np.ndarray:
        if self._trt.execute_fn is not None:
            return np.asarray(self._trt.execute_fn(x), dtype=np.float32)
        if self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(
                self.onnx_bytes, providers=["CPUExecutionProvider"]
            )
        return self._session.run(None, {self.in_name: x})[0]


class FakeRuntimeCache:
    """TensorRT-RTX's ``IRuntimeCache``: the kernels JIT-compiled for this GPU, here one
    entry per input shape executed. ``serialize``/``deserialize`` round-trip them."""

    PREFIX = b"FAKERTCACHE:"

    def __init__(self) -> None:
        self.shapes: set[tuple[int, ...]] = set()
        self.deserialized: list[bytes] = []  # every blob offered, accepted or not
        self.serialize_calls = 0

    def serialize(self) -> memoryview:
        self.serialize_calls += 1
        return memoryview(self.PREFIX + json.dumps(sorted(self.shapes)).encode())

    def deserialize(self, blob: Any) -> bool:
        data = bytes(blob)
        self.deserialized.append(data)
        if not data.startswith(self.PREFIX):
            return False  # as TensorRT-RTX: rejected, the cache is left unchanged
        try:
            shapes = {tuple(s) for s in json.loads(data[len(self.PREFIX) :])}
        except ValueError:
            return False
        self.shapes |= shapes
        return True

    def reset(self) -> None:
        self.shapes.clear()


class FakeRuntimeConfig:
    """TensorRT-RTX's ``IRuntimeConfig`` (``engine.create_runtime_config()``)."""

    def __init__(self, trt: FakeTensorRT) -> None:
        self._trt = trt
        self.cache: FakeRuntimeCache | None = None

    def create_runtime_cache(self) -> FakeRuntimeCache:
        cache = FakeRuntimeCache()
        self._trt.runtime_caches.append(cache)
        return cache

    def set_runtime_cache(self, cache: FakeRuntimeCache) -> bool:
        self.cache = cache
        return True

    def get_runtime_cache(self) -> FakeRuntimeCache | None:
        return self.cache


class FakeExecutionContext:
    def __init__(self, trt: FakeTensorRT, engine: FakeEngine) -> None:
        self._trt, self._engine = trt, engine
        self.runtime_config: FakeRuntimeConfig | None = None
        self.calls: list[tuple[Any, ...]] = []
        self.input_shape: tuple[int, ...] | None = None
        self.addresses: dict[str, int] = {}

    def _log(self, *call: Any) -> None:
        self.calls.append(call)
        self._trt.exec_calls.append(call)

    def set_input_shape(self, name: str, shape: Any) -> bool:
        shape = tuple(int(d) for d in shape)
        self._log("set_input_shape", name, shape)
        e = self._engine
        if name != e.in_name or len(shape) != len(e.in_shape):
            return False
        lo, _, hi = e.get_tensor_profile_shape(name, 0)
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return False
        self.input_shape = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        e = self._engine
        if name == e.in_name:
            return self.input_shape or e.in_shape
        if self.input_shape is None:
            return e.out_shape
        return (self.input_shape[0], *e.out_shape[1:])

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self._log("set_tensor_address", name, int(ptr))
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self._log("execute_async_v3", int(stream_handle))
        e, cuda = self._engine, self._trt.cuda
        if cuda is None:
            raise RuntimeError("FakeTensorRT needs cuda=FakeCudaRuntime(...) to execute")
        if self.input_shape is None or set(self.addresses) != {e.in_name, e.out_name}:
            return False
        stream = cuda.stream_for_handle(int(stream_handle))
        if stream.capture is not None and not self._trt.capture_supported:
            stream.capture_invalid = True
            return False
        # Captured now, like TensorRT: later set_* calls do not affect this enqueue.
        shape = self.input_shape
        if self.runtime_config is not None and self.runtime_config.cache is not None:
            self.runtime_config.cache.shapes.add(shape)  # TensorRT-RTX JIT-compiles for it
        in_ptr, out_ptr = self.addresses[e.in_name], self.addresses[e.out_name]
        out_shape = self.get_tensor_shape(e.out_name)

        def run() -> None:
            n_in = int(np.prod(shape)) * 4
            x = np.frombuffer(cuda.read(in_ptr, n_in), dtype=np.float32).reshape(shape)
            y = np.ascontiguousarray(e.compute(x.copy()), dtype=np.float32)
            if y.shape != out_shape:
                raise FakeCudaFault(f"engine function returned {y.shape}, expected {out_shape}")
            cuda.write(out_ptr, y.tobytes())
            e.executions.append((in_ptr, out_ptr, shape))

        cuda.enqueue(stream, f"trt exec b={shape[0]} in={in_ptr:#x}", run)
        return True


class FakeTensorRT:
    """FakeTensorRT: a stand-in for the ``tensorrt`` module (test double).

    Args:
        version: ``__version__``. "10.x" style by default; pass ``precision_flags=False``
            (and usually version "11.x") for TensorRT 11 behaviour.
        precision_flags: ``BuilderFlag.FP16`` / ``INT8`` exist (weak typing possible).
        strongly_typed_flag: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists.
        int8_calibrator: ``IInt8EntropyCalibrator2`` and ``config.int8_calibrator`` exist
            (default: same as ``precision_flags``).
        num_dla_cores: ``Builder.num_DLA_cores``.
        parse_errors: (desc, node, op) tuples the parser reports instead of parsing.
        build_error: message the builder logs before returning None.
        execute_fn: numpy function the engine computes (default: ONNX Runtime on the ONNX).
        capture_supported: execute_async_v3 works under CUDA stream capture.
        cuda: the FakeCudaRuntime whose memory and streams execution uses.
        flavour: "tensorrt", or "tensorrt-rtx" for a TensorRT-RTX runtime double (``FLAVOUR``
            says so; engines get ``create_runtime_config`` and its runtime cache).
    """

    def __init__(
        self,
        version: str = "10.3.0",
        *,
        precision_flags: bool = True,
        strongly_typed_flag: bool = True,
        int8_calibrator: bool | None = None,
        num_dla_cores: int = 0,
        parse_errors: tuple[tuple[str, str, str], ...] = (),
        build_error: str | None = None,
        execute_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        capture_supported: bool = True,
        cuda: FakeCudaRuntime | None = None,
        flavour: str = "tensorrt",
    ) -> None:
        if flavour not in ("tensorrt", "tensorrt-rtx"):
            raise ValueError(flavour)
        self.FLAVOUR = flavour
        self.__name__ = flavour.replace("-", "_")  # the real module's name: flavour_of reads it
        self.runtime_caches: list[FakeRuntimeCache] = []
        self.__version__ = version
        self.precision_flags = precision_flags
        self.int8_calibrator_supported = (
            precision_flags if int8_calibrator is None else int8_calibrator
        )
        self.num_dla_cores = num_dla_cores
        self.parse_errors = parse_errors
        self.build_error = build_error
        self.execute_fn = execute_fn
        self.capture_supported = capture_supported
        self.cuda = cuda
        self.calls: list[tuple[Any, ...]] = []
        self.exec_calls: list[tuple[Any, ...]] = []
        self.engines: list[FakeEngine] = []
        self.contexts: list[FakeExecutionContext] = []

        flags = {"GPU_FALLBACK": 2, "TF32": 3, "REFIT": 4}
        if precision_flags:
            flags |= {"FP16": 0, "INT8": 1}
        self.BuilderFlag = enum.IntEnum("BuilderFlag", flags)
        creation = {"EXPLICIT_BATCH": 0}
        if strongly_typed_flag:
            creation["STRONGLY_TYPED"] = 1
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", creation)
        self.MemoryPoolType = enum.IntEnum(
            "MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1}
        )
        self.DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
        self.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
        self.DataType = enum.IntEnum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3})
        if self.int8_calibrator_supported:
            self.IInt8Calibrator = type("IInt8Calibrator", (), {})
            self.IInt8EntropyCalibrator2 = type(
                "IInt8EntropyCalibrator2", (self.IInt8Calibrator,), {}
            )
        self.ILogger = FakeILogger
        self.Logger = FakeLogger

    def Builder(self, logger: Any) -> FakeBuilder:
        return FakeBuilder(self, logger)

    def OnnxParser(self, network: FakeNetwork, logger: Any) -> FakeOnnxParser:
        return FakeOnnxParser(self, network, logger)

    def Runtime(self, logger: Any) -> FakeRuntime:
        return FakeRuntime(self, logger)

    def nptype(self, dtype: Any) -> type:
        return {
            self.DataType.FLOAT: np.float32,
            self.DataType.HALF: np.float16,
            self.DataType.INT8: np.int8,
            self.DataType.INT32: np.int32,
        }[dtype]

    def call_names(self) -> list[str]:
        """The builder call log as names only (order assertions)."""
        return [c[0] for c in self.calls]


class ExplodingCudaRuntime:
    """Test double for a CUDA runtime whose driver crashes on the first call
    (``cudaGetDeviceCount`` raises ``RuntimeError("driver crashed")``)."""

    def cudaGetDeviceCount(self) -> None:
        raise RuntimeError("driver crashed")


__all__ = [
    "ExplodingCudaRuntime",
    "FakeCudaFault",
    "FakeCudaRuntime",
    "FakeDeviceProp",
    "FakeTensorRT",
]
