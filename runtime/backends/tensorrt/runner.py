"""TensorRT backend: a serialized engine run synchronously from one set of buffers.

One execution context, one stream, buffers sized from the profile's max shape at activation::

    infer(x): copy x into pinned in → record e0 → memcpy in → device in → record e1 →
              set_input_shape / set_tensor_address(in, out); execute_async_v3
              (or replay the CUDA graph of this shape) → record e2 →
              memcpy device out → pinned out → record e3 → wait e3

One buffer set is enough: the monitor's worker calls ``infer`` and waits. The four timing
events give :meth:`TensorRTBackend.last_stages_ms`, how ``mrm-edge bench`` times this path.
CUDA graphs (``cuda_graphs=True``, for ``mrm-edge doctor --cuda-graphs``): a graph bakes in
shapes and addresses, so one per input shape, captured after the first normal run of that
shape (TensorRT asks for one enqueue after a shape change); where capture fails (or pycuda,
which has no graph API) enqueues stay normal and ``graph_error`` says why. The checks before
loading are ``loader``'s; what ran against a real TensorRT: docs/export.md.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable, precision_from_filename
from mrm_edge.runtime.backends.cuda import api as cuda_api
from mrm_edge.runtime.backends.cuda import resources as cu
from mrm_edge.runtime.backends.tensorrt import loader
from mrm_edge.runtime.backends.tensorrt.capability import DISPLAY, RTX, STANDARD
from mrm_edge.runtime.backends.tensorrt.loader import EngineNotLoadable


class TensorRTBackend(Backend):
    """Run a serialized TensorRT engine from pinned host and device buffers, one stream.

    Args:
        engine_path: ``model.<precision>.<key>.engine`` with its ``.json`` sidecar.
        cuda_graphs: capture and replay one CUDA graph per input shape.
        trt: the TensorRT module (default: import the flavour the engine's sidecar names).
        cudart: a :class:`CudaApi`, or a cuda-python runtime module (wrapped in
            CudaPythonApi); default: :func:`load_cuda_api` (``$MRM_EDGE_CUDA``, else
            cuda-python when importable, else pycuda). Tests pass test doubles for both.
    """

    name = "tensorrt"

    def __init__(
        self,
        engine_path: Path,
        *,
        cuda_graphs: bool = False,
        precision: str | None = None,
        trt: Any = None,
        cudart: Any = None,
    ) -> None:
        super().__init__()
        self.engine_path = Path(engine_path)
        self.cuda_graphs = cuda_graphs
        self.device = "cuda:0"  # GPU 0: the one the machine's facts describe and plans fit
        self.precision = precision or precision_from_filename(self.engine_path)
        self.graph_error: str | None = None
        self._trt = trt
        self._cudart = cudart
        self.cuda_binding: str | None = None  # e.g. "cuda-python 13.0.1", once active
        self.flavour: str | None = None  # the engine's TensorRT flavour, once active
        self.trt_version: str | None = None
        self.notes: list[str] = []  # things that went wrong without stopping activation
        self._stack: contextlib.ExitStack | None = None

    # ---------------------------------------------------------------- activation

    def _activate(self) -> None:
        if not self.engine_path.is_file():
            raise FileNotFoundError(f"{self.engine_path}: no such engine file")
        trt, self.flavour = loader.flavour_module(self.engine_path, self._trt)
        self.trt_version = str(getattr(trt, "__version__", "") or "unknown")
        cuda = cuda_api.as_cuda_api(self._cudart)
        self.cuda_binding = cuda.binding
        with contextlib.ExitStack() as stack:
            try:
                cuda.set_device(0)
            except cuda_api.CudaError as e:
                raise BackendUnavailable(self.name, f"CUDA device 0: {e}") from e
            stack.callback(cuda.close)  # runs last: after every resource below is freed
            loader.verify(self.engine_path, cuda, trt, self.flavour)
            self._cuda = cuda
            stack.callback(self._drop_engine)
            self._load_engine(trt)
            self._allocate(cuda, stack)
            self._stack = stack.pop_all()

    def describe(self) -> str:
        trt = (
            f", {DISPLAY.get(self.flavour, self.flavour)} {self.trt_version}"
            if self.flavour
            else ""
        )
        cuda = f", CUDA via {self.cuda_binding}" if self.cuda_binding else ""
        return f"{super().describe()}{trt}{cuda}"

    def _load_engine(self, trt: Any) -> None:
        self._ctx_shape: tuple[int, ...] | None = None
        self._out_shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._logger = loader.make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        data = self.engine_path.read_bytes()
        if loader.malformed(trt, self._runtime, data):
            raise EngineNotLoadable(
                f"{self.engine_path.name}: {DISPLAY[self.flavour or STANDARD]} says this is "
                "no engine (malformed: truncated, or not an engine file)"
            )
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            why, no_gpu = loader.why_not_loaded(
                self.flavour or STANDARD, self.engine_path, self._logger
            )
            raise BackendUnavailable(self.name, why) if no_gpu else EngineNotLoadable(why)
        self._engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise ValueError(
                f"{self.engine_path}: expected one input and one output tensor, "
                f"found {ins} and {outs}"
            )
        self.input_name, self.output_name = ins[0], outs[0]
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        lo, _, hi = (
            tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(self.input_name, 0)
        )
        self.profile_min, self.profile_max = lo, hi
        self.max_batch = hi[0]
        self.min_batch = lo[0]
        self.input_dims = tuple(d if d == lo[i + 1] else None for i, d in enumerate(hi[1:]))
        if self.flavour == RTX:
            # The JIT specialisation for this GPU is cached beside the engine: paid once.
            self._runtime_cache = loader.RuntimeCache(engine, self.engine_path, self.notes)
            self._context = engine.create_execution_context(self._runtime_cache.config)
        else:
            self._context = engine.create_execution_context()
        if self._context is None:
            raise RuntimeError(
                f"{self.engine_path}: cannot create an execution context (GPU memory?)"
            )
        # The output's largest shape: the one the largest input produces.
        self._max_in_shape = hi
        self._set_shape(self._max_in_shape)
        self._max_out_shape = self._out_shapes[self._max_in_shape]

    def _drop_engine(self) -> None:
        cache = getattr(self, "_runtime_cache", None)
        if cache is not None and hasattr(self, "_context"):
            cache.save()  # what this run compiled, for the next activation
        # Order matters for TensorRT: context before engine before runtime.
        for attr in ("_context", "_runtime_cache", "_engine", "_runtime", "_logger"):
            if hasattr(self, attr):
                delattr(self, attr)
        self._ctx_shape = None
        self._out_shapes = {}

    def _allocate(self, cuda: cuda_api.CudaApi, stack: contextlib.ExitStack) -> None:
        self._stream = stack.enter_context(cu.Stream(cuda))
        in_bytes = int(np.prod(self._max_in_shape)) * self._in_dtype.itemsize
        out_bytes = int(np.prod(self._max_out_shape)) * self._out_dtype.itemsize
        self._host_in = stack.enter_context(
            cu.PinnedHostBuffer(self._max_in_shape, self._in_dtype, cuda)
        )
        self._host_out = stack.enter_context(
            cu.PinnedHostBuffer(self._max_out_shape, self._out_dtype, cuda)
        )
        self._dev_in = stack.enter_context(cu.DeviceBuffer(in_bytes, cuda))
        self._dev_out = stack.enter_context(cu.DeviceBuffer(out_bytes, cuda))
        # Before the copy in, after it, after the enqueue, after the copy out.
        self._events = [stack.enter_context(cu.Event(cuda, timing=True)) for _ in range(4)]
        self._graphs: dict[tuple[int, ...], cu.GraphExec] = {}
        stack.callback(self._destroy_graphs)
        # Registered last, so it runs first on close: nothing is freed while queued work on
        # the stream may still touch it (a call abandoned by an exception).
        stack.callback(self._synchronize_quietly)

    def _synchronize_quietly(self) -> None:
        with contextlib.suppress(cuda_api.CudaError):
            self._stream.synchronize()

    def _destroy_graphs(self) -> None:
        graphs, self._graphs = self._graphs, {}
        for g in graphs.values():
            with contextlib.suppress(cuda_api.CudaError):
                g.close()

    def _deactivate(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    # ---------------------------------------------------------------- inference

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if self._ctx_shape == shape:
            return
        if not self._context.set_input_shape(self.input_name, shape):
            raise ValueError(
                f"{self.name}: input shape {shape} is outside the engine's profile "
                f"{self.profile_min}..{self.profile_max}"
            )
        self._ctx_shape = shape
        out = tuple(int(d) for d in self._context.get_tensor_shape(self.output_name))
        if any(d < 0 for d in out):
            raise RuntimeError(f"{self.name}: output shape {out} unresolved for input {shape}")
        self._out_shapes[shape] = out

    def _infer(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.profile_min[1:], self.profile_max[1:]
        if not all(a <= d <= c for a, d, c in zip(lo, x.shape[1:], hi, strict=True)):
            raise ValueError(
                f"{self.name}: input shape {x.shape} outside the engine's profile "
                f"{self.profile_min}..{self.profile_max}"
            )
        assert self.max_batch is not None
        if not self.min_batch <= x.shape[0] <= self.max_batch:
            raise ValueError(
                f"{self.name}: batch {x.shape[0]} outside the engine's profile "
                f"{self.min_batch}..{self.max_batch}"
            )
        cuda, stream, (e0, e1, e2, e3) = self._cuda, self._stream, self._events
        assert self._host_in.array is not None and self._host_out.array is not None
        np.copyto(self._host_in.array.reshape(-1)[: x.size].reshape(x.shape), x)
        e0.record(stream)
        in_bytes = x.size * self._in_dtype.itemsize
        cuda.memcpy_htod_async(self._dev_in.ptr, self._host_in.ptr, in_bytes, stream.raw)
        e1.record(stream)
        shape = tuple(x.shape)
        self._enqueue(shape)
        e2.record(stream)
        out_shape = self._out_shapes[shape]
        n_out = int(np.prod(out_shape))
        out_bytes = n_out * self._out_dtype.itemsize
        cuda.memcpy_dtoh_async(self._host_out.ptr, self._dev_out.ptr, out_bytes, stream.raw)
        e3.record(stream)
        e3.synchronize()
        out = self._host_out.array.reshape(-1)[:n_out].reshape(out_shape)
        return out.astype(np.float32, copy=True)  # the pinned buffer is reused by the next call

    def last_stages_ms(self) -> tuple[float, float, float, float]:
        """The last ``infer`` call's device times in ms, from its events: copy in, compute
        (the enqueue or graph launch), copy out, and first event to last."""
        e0, e1, e2, e3 = (e.raw for e in self._events)
        ms = self._cuda.event_elapsed_ms
        return ms(e0, e1), ms(e1, e2), ms(e2, e3), ms(e0, e3)

    def _enqueue(self, shape: tuple[int, ...]) -> None:
        graph = self._graphs.get(shape)
        if graph is not None:
            graph.launch(self._stream)
            return
        self._set_shape(shape)
        self._context.set_tensor_address(self.input_name, self._dev_in.ptr)
        self._context.set_tensor_address(self.output_name, self._dev_out.ptr)
        if not self._context.execute_async_v3(self._stream.handle):
            raise RuntimeError(f"{self.name}: execute_async_v3 failed for input shape {shape}")
        if self.cuda_graphs and self.graph_error is None:
            self._capture(shape)

    def _capture(self, shape: tuple[int, ...]) -> None:
        """Capture the enqueue just made (same shape and addresses) into a CUDA graph."""
        cuda = self._cuda
        if not cuda.graphs_supported:
            self.graph_error = f"{cuda.binding}: {cuda.graphs_unsupported}"
            return
        try:
            cuda.begin_capture(self._stream.raw)
        except cuda_api.CudaError as e:
            self.graph_error = str(e)
            return
        ok = False
        try:
            ok = bool(self._context.execute_async_v3(self._stream.handle))
        finally:
            try:
                graph = cu.end_capture(cuda, self._stream)
            except cuda_api.CudaError as e:
                self.graph_error = str(e)
                graph = None
        if graph is None:
            return
        if not ok:
            graph.close()
            self.graph_error = (
                "execute_async_v3 failed under stream capture (engine not capturable)"
            )
            return
        self._graphs[shape] = graph
