"""The one exception type the data layer raises for bad input.

Loaders read files written by other people's tools, so malformed input is expected rather
than exceptional. Every such problem surfaces as a :class:`DataError` with a one-line
message that names the file, the field, what was expected and what was found, so a user
can fix the file without reading a traceback from deep inside csv, scipy or wfdb.
"""

from __future__ import annotations

__all__ = ["DataError", "field_error"]


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
