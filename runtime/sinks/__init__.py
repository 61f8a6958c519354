"""Where the monitor's results go: the ``Sink`` interface (base.py), one module per sink,
``registry.py`` by name, ``fanout.py`` to all of a run's sinks."""
