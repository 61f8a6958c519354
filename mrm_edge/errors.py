"""One-line reports of exceptions, the house format for an error a user reads in every layer
(hence here, in the foundation, for the runtime, the export and the commands alike)."""

from __future__ import annotations


def first_line(exc: BaseException, with_type: bool = True) -> str:
    """The first line of an exception's message (``"Type: line"`` unless ``with_type`` is
    False), or the type's name when the message is empty: one-line error reports."""
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text[0]}" if with_type else text[0]


def one_line(exc: BaseException, limit: int = 160) -> str:
    """``"Type: message"`` of a third-party exception, squeezed onto one short line.

    Parser errors from scipy or wfdb can span lines; our messages promise to be one line.
    """
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
