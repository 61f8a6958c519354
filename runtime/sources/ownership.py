"""Who may open which stream: stream ownership (a stream id belongs to the identity that
first opened it, for the monitor's lifetime) and the optional allow-list (``--allow-list``:
JSON mapping identities to the stream id patterns they may open). The rules and the
file's format: docs/devices.md (Stream ownership)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

# An identity with a valid certificate could otherwise open ids until memory runs out.
MAX_OWNED_STREAMS = 10_000


class AllowListError(ValueError):
    """A malformed allow-list file (one line naming the file and what was expected)."""


class AllowList:
    """Identity → the stream id patterns it may open."""

    def __init__(self, entries: Mapping[str, Sequence[str]], source: str = "allow-list") -> None:
        self.entries = {k: tuple(v) for k, v in entries.items()}
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> AllowList:
        p = Path(path)
        where = f"allow-list {p}"
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AllowListError(f"{where}: no such file") from None
        except OSError as e:
            raise AllowListError(f"{where}: cannot read ({e.strerror or e})") from None
        except UnicodeDecodeError:
            raise AllowListError(f"{where}: not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise AllowListError(f"{where}: not JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(doc, dict):
            raise AllowListError(
                f"{where}: expected a JSON object mapping certificate subjects to lists of "
                f"stream ids, got {type(doc).__name__}"
            )
        for subject, ids in doc.items():
            if not subject.strip():
                raise AllowListError(f"{where}: an empty subject")
            if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
                raise AllowListError(
                    f"{where}: {subject!r}: expected a list of stream ids (strings)"
                )
        return cls(doc, where)

    def permits(self, identity: str, stream_id: str) -> str | None:
        """None if ``identity`` may open ``stream_id``, else why not (one line)."""
        patterns = self.entries.get(identity)
        if patterns is None:
            return f"{identity!r} is not in the {self.source}"
        if not any(fnmatch.fnmatchcase(stream_id, p) for p in patterns):
            return f"{identity!r} may not open stream {stream_id!r} ({self.source})"
        return None


class StreamOwners:
    """The owner of every stream id opened so far (for the monitor's lifetime)."""

    def __init__(self, allow_list: AllowList | None = None) -> None:
        self.allow_list = allow_list
        self._owner: dict[str, str] = {}

    def claim(self, stream_id: str, identity: str) -> str | None:
        """Record ``identity`` as the owner of ``stream_id`` if it may open it; returns why
        not (one line) otherwise, the owner left unchanged."""
        if self.allow_list is not None:
            refused = self.allow_list.permits(identity, stream_id)
            if refused is not None:
                return refused
        owner = self._owner.get(stream_id)
        if owner is None:
            if len(self._owner) >= MAX_OWNED_STREAMS:
                return f"{MAX_OWNED_STREAMS} stream ids are in use; no new one is accepted"
            self._owner[stream_id] = identity
            return None
        if owner != identity:
            return f"stream id {stream_id!r} belongs to {owner!r}, not {identity!r}"
        return None
