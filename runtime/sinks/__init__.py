"""Where the monitor's results go. ``base`` holds the ``Sink`` interface and the records it
receives; ``registry`` maps a sink's name to its factory (``jsonl``, ``live``, ``report``);
``fanout`` hands each record to every sink of a run.

- ``jsonl``: ``JsonlSink``, the event log (one JSON object per line, flushed per line).
- ``live``: ``LiveView``, the terminal dashboard (rich), refreshed at most 4 times a second.
- ``report``: ``ConsoleReport``, which backend runs and why at the start, the summary at the end.
- ``summary``: ``Tally`` (counters the engine keeps) and ``Summary`` (the end-of-run report).
"""
