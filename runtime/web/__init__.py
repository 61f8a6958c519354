"""The central station in the browser (``mrm-edge monitor --web``; the ``web`` extra). The
modules: docs/architecture.md; what it shows and guarantees: docs/station.md."""
