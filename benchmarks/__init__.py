"""Studies and the soak: measurements run from a checkout (``python -m benchmarks.NAME``),
not part of the installed package. What each measures and how to run it: README.md here."""
