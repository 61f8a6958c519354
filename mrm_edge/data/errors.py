"""The one exception type the data layer raises for bad input: loaders read files written by
other people's tools, so every problem is a one-line message naming the file, the field, what
was expected and what was found, never a traceback from deep inside csv, scipy or wfdb."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or inconsistent input data (a file, a column, a signal, a configuration); a
    :class:`ValueError`, so callers that already guard against bad values keep working."""


def field_error(source: object, field: str, expected: str, found: object) -> DataError:
    """A :class:`DataError` in the house format ``"<file>: field '<f>' <found>, expected ..."``."""
    return DataError(f"{source}: field {field!r} {found}, expected {expected}")
