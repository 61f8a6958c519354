"""The card's identity in a Triton config's ``parameters`` (docs/triton.md): the export writes
it, a front-end checks it; both import this module so neither imports the other."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PREFIX = "mrm_edge."
#: What must match for a front-end to use a served model: the labels (and their order), the
#: rate and window the windows are cut at, the leads, and the FP32 ONNX every variant was
#: exported and gated from. The model name is informative only (a renamed copy is the same
#: model).
CHECKED_KEYS: tuple[str, ...] = (
    "labels",
    "sampling_rate",
    "window_samples",
    "leads",
    "onnx_sha256",
)


def model_identity(model: Any) -> dict[str, str]:
    """The identity of a deployed model directory (``runtime.model.DeployedModel``: the card,
    and the SHA-256 recorded in the FP32 ONNX's sidecar) as Triton parameters
    (``mrm_edge.<key>`` → string)."""
    fp32 = model.onnx.get("fp32")
    return {
        f"{PREFIX}model_name": model.card.name,
        f"{PREFIX}labels": json.dumps(list(model.card.labels)),
        f"{PREFIX}sampling_rate": str(int(model.card.sampling_rate)),
        f"{PREFIX}window_samples": str(int(model.card.window_samples)),
        f"{PREFIX}leads": json.dumps(list(model.card.leads)),
        f"{PREFIX}onnx_sha256": str(fp32.sidecar.get("sha256", "")) if fp32 else "",
    }


def parameters_of(config: Mapping[str, Any]) -> dict[str, str]:
    """A Triton model config's (JSON form) ``parameters`` as ``key → string``."""
    params = config.get("parameters") or {}
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out[str(key)] = str(value.get("string_value", ""))
    return out


def _short(value: str) -> str:
    return value[:12] + "…" if len(value) > 16 else value


def identity_mismatch(expected: Mapping[str, str], served: Mapping[str, str]) -> str | None:
    """None when ``served`` (a config's parameters) is the ``expected`` model; else one line
    naming what differs (or that the served model carries no mrm-edge identity)."""
    if not any(k.startswith(PREFIX) for k in served):
        return "carries no mrm-edge identity (not a repository of `mrm-edge export --triton-repo`)"
    diffs = []
    for key in CHECKED_KEYS:
        want, got = expected.get(PREFIX + key), served.get(PREFIX + key)
        if want != got:
            what = "onnx sha256" if key == "onnx_sha256" else key.replace("_", " ")
            diffs.append(f"{what} {_short(str(got))} (card: {_short(str(want))})")
    return "; ".join(diffs) if diffs else None
