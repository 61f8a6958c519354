"""A Triton Inference Server as a backend: ``--backend triton:HOST:PORT[/MODEL]`` (gRPC).

How it checks the served model, bounds and times out requests, and reconnects: docs/triton.md.
A mismatching served model is a refusal (:class:`ServedModelMismatch`), never a fallback; an
unreachable server is :class:`BackendUnavailable`. ``tritonclient`` is imported in
``activate()`` (extra ``triton``), never at module import.
"""

from __future__ import annotations

import contextlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from mrm_edge.runtime.backends.base import Backend, BackendUnavailable
from mrm_edge.runtime.backends.registry import BackendSpec, Candidate, PlanRequest

from mrm_edge.errors import first_line
from mrm_edge.served_identity import identity_mismatch, model_identity, parameters_of

INSTALL_HINT = "pip install 'mrm-edge[triton]'"
FORM = "triton:HOST:PORT[/MODEL]"
# Preference among matching served models: the kind of runner, then precision per device.
KIND_ORDER = ("tensorrt_plan", "onnxruntime_onnx", "python")
PRECISION_ORDER = {
    "tensorrt_plan": ("int8", "fp16", "fp32"),
    "onnxruntime_onnx": ("fp16", "fp32", "int8"),
    "python": ("int8", "fp32", "fp16"),
}


class ServedModelMismatch(ValueError):
    """The server answers, but not with this model (one line: what differs)."""


@dataclass(frozen=True)
class TritonTarget:
    host: str
    port: int
    model: str | None = None

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"


_TARGET = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9._-]+):(\d{1,5})(?:/([A-Za-z0-9._-]+))?$")


def parse_target(text: str) -> TritonTarget:
    """``HOST:PORT[/MODEL]`` (the part after ``triton:``); ValueError (one line) otherwise."""
    m = _TARGET.match(text.strip())
    if not m:
        raise ValueError(f"--backend triton:{text}: expected {FORM} (e.g. triton:127.0.0.1:8001)")
    port = int(m.group(2))
    if not 0 < port < 65536:
        raise ValueError(f"--backend triton:{text}: port {port} is not in 1..65535")
    return TritonTarget(m.group(1), port, m.group(3))


def _import_client() -> Any:
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as e:
        raise BackendUnavailable(
            "triton", f"tritonclient is not installed ({first_line(e, with_type=False)}); "
            f"{INSTALL_HINT}"
        ) from e  # fmt: skip
    return grpcclient


class TritonBackend(Backend):
    """Inference on a Triton server (docs/triton.md).

    Args:
        target: the server (and optionally the model name).
        expected: the identity the served model must carry (``served_identity.model_identity``).
        precision: only served models of this precision (None: any).
        timeout_s: deadline of each request (seconds).
        max_in_flight: requests outstanding at once for one batch.
        reconnect_after_s: how often the chain checks for the server while on a fallback.
    """

    name = "triton"

    def __init__(
        self,
        target: TritonTarget,
        expected: dict[str, str],
        *,
        precision: str | None = None,
        timeout_s: float = 10.0,
        max_in_flight: int = 4,
        reconnect_after_s: float = 2.0,
    ) -> None:
        super().__init__()
        self.target = target
        self.expected = dict(expected)
        self.wanted_precision = precision
        self.timeout_s = float(timeout_s)
        self.max_in_flight = max(1, int(max_in_flight))
        self.reconnect_after_s = reconnect_after_s
        self.device = f"triton {target.url}"
        self.model_name: str | None = target.model
        self.platform = ""
        self._client: Any = None
        self._grpc: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._stale = False  # a request failed: reconnect (and re-check) before the next

    # ------------------------------------------------------------------ activation

    def _activate(self) -> None:
        grpc = _import_client()
        client = grpc.InferenceServerClient(self.target.url)
        try:
            if not client.is_server_ready(client_timeout=self.timeout_s):
                raise BackendUnavailable(self.name, "server not ready")
            served = self._choose(client)
        except grpc.InferenceServerException as e:
            client.close()
            raise BackendUnavailable(self.name, _message(e)) from e
        except BaseException:
            client.close()
            raise
        name, config = served
        self.model_name = name
        self.platform = config.get("platform") or config.get("backend") or "?"
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.input_dims = tuple(int(d) for d in config["input"][0]["dims"])
        self.max_batch = int(config.get("max_batch_size") or 0) or None
        self.precision = parameters_of(config).get("mrm_edge.precision", "fp32")
        self._grpc, self._client, self._stale = grpc, client, False
        self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="triton-request")

    def _ready_models(self, client: Any) -> list[str]:
        index = client.get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
        return [m["name"] for m in index.get("models", []) if m.get("state") == "READY"]

    def _choose(self, client: Any) -> tuple[str, dict[str, Any]]:
        """The served model to use: the named one after its checks, else the best match."""
        ready = self._ready_models(client)
        names = [self.target.model] if self.target.model else ready
        if self.target.model and self.target.model not in ready:
            raise BackendUnavailable(
                self.name,
                f"{self.target.url}: model {self.target.model!r} is not ready "
                f"(ready: {', '.join(ready) or 'none'})",
            )
        matches: list[tuple[str, dict[str, Any]]] = []
        refusals: list[str] = []
        for name in names:
            answer = client.get_model_config(name, as_json=True, client_timeout=self.timeout_s)
            config = answer["config"]
            params = parameters_of(config)
            why = identity_mismatch(self.expected, params)
            served_precision = params.get("mrm_edge.precision")
            if why is None and self.wanted_precision not in (None, served_precision):
                why = f"precision {served_precision} (asked for {self.wanted_precision})"
            if why is None:
                matches.append((name, config))
            else:
                refusals.append(f"{name!r} {why}")
        if not matches:
            detail = "; ".join(refusals) if refusals else "no model is ready"
            raise ServedModelMismatch(
                f"{self.device}: not the model of {self.expected.get('mrm_edge.model_name')} "
                f"({detail})"
            )
        return min(matches, key=lambda m: _preference(m[1]))

    def _deactivate(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            with contextlib.suppress(Exception):  # a channel to a dead server may complain
                self._client.close()
        self._client = self._pool = None

    # ------------------------------------------------------------------ inference

    def _reconnect(self) -> None:
        """A new channel after a failed request (gRPC would wait out its reconnect backoff
        on the old one), and the served model checked again: a server that comes back may
        serve another model."""
        grpc = self._grpc
        with contextlib.suppress(Exception):
            self._client.close()
        self._client = grpc.InferenceServerClient(self.target.url)
        self._stale = False
        try:
            name, _ = self._choose(self._client)
        except grpc.InferenceServerException as e:
            self._stale = True
            raise RuntimeError(f"{self.device}: {_message(e)}") from e
        if name != self.model_name:
            self._stale = True
            raise ServedModelMismatch(
                f"{self.device}: came back serving {name!r}, not {self.model_name!r}"
            )

    def _request(self, x: np.ndarray) -> np.ndarray:
        grpc = self._grpc
        tensor = grpc.InferInput(self.input_name, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        wanted = [grpc.InferRequestedOutput(self.output_name)]
        try:
            result = self._client.infer(
                self.model_name, [tensor], outputs=wanted, client_timeout=self.timeout_s
            )
        except grpc.InferenceServerException as e:
            self._stale = True
            raise RuntimeError(f"{self.device}: {_message(e)}") from e
        p = result.as_numpy(self.output_name)
        if p is None:
            raise RuntimeError(f"{self.device}: response without {self.output_name!r}")
        return p

    def _infer(self, x: np.ndarray) -> np.ndarray:
        # Backend.infer already split x to max_batch: one request. Larger server batches
        # would be split there; the pool bounds the requests of one call that are in flight.
        assert self._pool is not None
        return self._pool.submit(self._request, x).result()

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for ``x``: requests of at most ``max_batch`` windows, at most
        ``max_in_flight`` outstanding at once, each under the ``timeout_s`` deadline."""
        x = self.check_input(x)
        if self._stale:
            self._reconnect()
        size = self.max_batch or len(x)
        parts = [x[i : i + size] for i in range(0, len(x), size)]
        assert self._pool is not None
        futures = [self._pool.submit(self._request, part) for part in parts]
        return np.concatenate([f.result() for f in futures]).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ the chain's checks

    def reachable(self) -> bool:
        """Whether the server answers ready now (a short check with a new connection; the
        chain asks this while it runs on a fallback)."""
        try:
            grpc = _import_client()
            client = grpc.InferenceServerClient(self.target.url)
        except Exception:
            return False
        try:
            return bool(client.is_server_ready(client_timeout=min(self.timeout_s, 1.0)))
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def describe(self) -> str:
        served = f" {self.model_name} ({self.platform})" if self.model_name else ""
        batch = "unlimited" if self.max_batch is None else f"max batch {self.max_batch}"
        return f"triton {self.target.url}{served}, {self.precision}, {batch}"


def _message(e: Any) -> str:
    """A tritonclient error as one line (its status and message)."""
    text = e.message() if hasattr(e, "message") else str(e)
    status = e.status() if hasattr(e, "status") else None
    line = first_line(RuntimeError(text), with_type=False) if text else type(e).__name__
    return f"{status}: {line}" if status and status not in line else line


def _preference(config: dict[str, Any]) -> tuple[int, int]:
    kind = config.get("platform") or config.get("backend") or ""
    k = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    order = PRECISION_ORDER.get(kind, ("fp32",))
    precision = parameters_of(config).get("mrm_edge.precision", "fp32")
    return k, order.index(precision) if precision in order else len(order)


def plan(request: PlanRequest) -> tuple[list[Candidate], list[str]]:
    """The one option for ``triton:HOST:PORT`` (auto never plans a remote backend)."""
    target = request.target
    if not isinstance(target, TritonTarget):
        return [], [f"Triton: needs an address ({FORM})"]
    if "fp32" not in request.model.onnx:
        why = "its SHA-256 is the identity the served model is checked against"
        return [], [f"Triton: the local model directory needs its verified model.onnx ({why})"]
    precision = request.precision
    identity = model_identity(request.model)
    cand = Candidate(
        f"triton {target.url}" + (f"/{target.model}" if target.model else ""),
        "triton",
        lambda: TritonBackend(target, identity, precision=precision),
        "Triton Inference Server (gRPC): inference off this machine",
        precision=precision,
    )
    return [cand], []


SPEC = BackendSpec(
    name="triton",
    family="triton",
    rank=5,
    plan=plan,
    quiet_when_passed=True,
    parse_target=parse_target,
    target_metavar="HOST:PORT[/MODEL]",
)
