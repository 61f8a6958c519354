"""Where the runtime keeps what it may recompute but should not have to on every start (the
OpenVINO compiled-model cache, ``auto``'s measured probe): ``$MRM_EDGE_CACHE_DIR``, else
``$XDG_CACHE_HOME/mrm-edge``, else ``~/.cache/mrm-edge``."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MRM_EDGE_CACHE_DIR"


def user_cache_dir(sub: str) -> Path:
    """``<cache root>/<sub>`` (not created: the writer creates it when it writes)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root) / sub
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "mrm-edge" / sub


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
