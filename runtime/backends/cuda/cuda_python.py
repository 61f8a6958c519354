""":class:`CudaApi` over cuda-python's runtime API (``cuda.bindings.runtime``). The module is
passed in, so the TensorRT backend runs on the test double ``FakeCudaRuntime``.
"""

from __future__ import annotations

from typing import Any

from mrm_edge.runtime.backends.cuda.api import CudaApi, GpuInfo, check


class CudaPythonApi(CudaApi):
    """cuda-python's runtime API (the default binding)."""

    def __init__(self, cudart: Any, version: str | None = None) -> None:
        self.cudart = cudart
        version = version or getattr(cudart, "__version__", None)
        self.binding = f"cuda-python {version}" if version else "cuda-python"

    # ---------------------------------------------------------------- devices

    def device_count(self) -> int:
        return int(check(self.cudart.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def device_properties(self, device: int) -> GpuInfo:
        prop = check(
            self.cudart.cudaGetDeviceProperties(device), f"cudaGetDeviceProperties({device})"
        )
        name = prop.name
        if isinstance(name, (bytes, bytearray)):  # a fixed char[256], NUL-padded
            name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
        cc = f"{int(prop.major)}.{int(prop.minor)}"
        return GpuInfo(str(name).strip(), cc, int(prop.totalGlobalMem), device)

    def set_device(self, device: int) -> None:
        check(self.cudart.cudaSetDevice(device), f"cudaSetDevice({device})")

    # ---------------------------------------------------------------- memory

    def malloc(self, nbytes: int) -> int:
        return int(check(self.cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes})"))

    def free(self, ptr: int) -> None:
        check(self.cudart.cudaFree(ptr), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        return int(check(self.cudart.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes})"))

    def free_host(self, ptr: int) -> None:
        check(self.cudart.cudaFreeHost(ptr), "cudaFreeHost")

    # ---------------------------------------------------------------- streams

    def stream_create(self) -> Any:
        flags = getattr(self.cudart, "cudaStreamNonBlocking", 1)
        return check(self.cudart.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def stream_synchronize(self, stream: Any) -> None:
        check(self.cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        check(self.cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")

    # ---------------------------------------------------------------- events

    def event_create(self, timing: bool = False) -> Any:
        rt = self.cudart
        # Without timing by default: cheaper, and all the pipeline needs for ordering.
        flags = (
            getattr(rt, "cudaEventDefault", 0)
            if timing
            else getattr(rt, "cudaEventDisableTiming", 2)
        )
        return check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")

    def event_record(self, event: Any, stream: Any) -> None:
        check(self.cudart.cudaEventRecord(event, stream), "cudaEventRecord")

    def event_synchronize(self, event: Any) -> None:
        check(self.cudart.cudaEventSynchronize(event), "cudaEventSynchronize")

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return float(check(self.cudart.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def event_destroy(self, event: Any) -> None:
        check(self.cudart.cudaEventDestroy(event), "cudaEventDestroy")

    # ---------------------------------------------------------------- copies

    def memcpy_htod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(HtoD)")

    def memcpy_dtoh_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync(DtoH)")

    # ---------------------------------------------------------------- graphs

    def begin_capture(self, stream: Any) -> None:
        # Thread-local mode: other threads' CUDA calls (e.g. a second backend) stay legal.
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(self.cudart.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        graph = check(self.cudart.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        try:
            return check(self.cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            check(self.cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def graph_launch(self, graph: Any, stream: Any) -> None:
        check(self.cudart.cudaGraphLaunch(graph, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph: Any) -> None:
        check(self.cudart.cudaGraphExecDestroy(graph), "cudaGraphExecDestroy")
