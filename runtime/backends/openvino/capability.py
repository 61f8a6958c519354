"""What OpenVINO can do here: is it installed (and which version), and does this CPU compute
BF16 natively (otherwise BF16 is refused with the reason; docs/cpu-runtimes.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrm_edge.errors import first_line

INSTALL_HINT = "pip install 'mrm-edge[openvino]'"
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class OpenVinoInfo:
    """``module`` and ``version`` when OpenVINO imports, else ``reason`` (one line)."""

    module: Any = None
    version: str | None = None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.module is not None


def probe_openvino() -> OpenVinoInfo:
    """Import OpenVINO (lazily: only a plan or an activation calls this)."""
    try:
        import openvino
    except ImportError as e:
        why = first_line(e, with_type=False)
        return OpenVinoInfo(reason=f"OpenVINO is not installed ({why}); {INSTALL_HINT}")
    return OpenVinoInfo(openvino, str(getattr(openvino, "__version__", "?")).split("-")[0])


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_support(
    capabilities: Iterable[str] | None, flags: Iterable[str] | None = None
) -> tuple[bool, str]:
    """Whether BF16 runs natively, from OpenVINO's CPU ``OPTIMIZATION_CAPABILITIES`` and/or
    the CPU flags, and why (a reason that names what was looked at)."""
    caps = [str(c).upper() for c in capabilities or ()]
    found = sorted(f for f in (flags or ()) if f in BF16_FLAGS)
    if "BF16" in caps or found:
        basis = []
        if "BF16" in caps:
            basis.append("OpenVINO CPU capabilities list BF16")
        if found:
            basis.append(f"CPU flags {', '.join(found)}")
        return True, "; ".join(basis)
    shown = ", ".join(caps) if caps else "not queried"
    return False, (
        f"this CPU has no native BF16 (no {' or '.join(BF16_FLAGS)} flag; OpenVINO CPU "
        f"capabilities: {shown}): BF16 needs AMX-BF16 or AVX512-BF16"
    )


def cpu_bf16(info: OpenVinoInfo) -> tuple[bool, str]:
    """:func:`bf16_support` of this machine (``info``: :func:`probe_openvino`'s)."""
    try:
        caps = list(info.module.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # no OpenVINO (module None), or no CPU plugin: the flags still answer
        caps = None
    return bf16_support(caps, cpu_flags())
