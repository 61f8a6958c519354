"""The one exception type the data layer raises for bad input.

Loaders read files written by other people's tools, so malformed input is expected rather
than exceptional. Every such problem surfaces as a :class:`DataError` with a one-line
message that names the file, the field, what was expected and what was found, so a user
can fix the file without reading a traceback from deep inside csv, scipy or wfdb.
"""

from __future__ import annotations

__all__ = ["DataError", "field_error", "one_line"]


class DataError(ValueError):
    """Bad or inconsistent input data (a file, a column, a signal, a configuration).

    It subclasses :class:`ValueError` so callers that already guard against bad values
    keep working, while callers that care can catch exactly this.
    """


def field_error(source: object, field: str, expected: str, found: object) -> DataError:
    """Build a :class:`DataError` in the house format ``"<file>: field '<f>' ..."``.

    Keeping the format in one place keeps messages greppable and uniform across loaders.
    ``source`` is usually a file name (a :class:`~pathlib.Path` is shortened to its name
    by the caller when the full path would only add noise).
    """
    return DataError(f"{source}: field {field!r} {found}, expected {expected}")


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
