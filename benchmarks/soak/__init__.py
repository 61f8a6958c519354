"""The soak: many synthetic streams for a long simulated time at max speed, nothing lost.

``run_soak`` drives the real :class:`~mrm_edge.runtime.engine.Monitor` — preprocessing,
quality checks, the dynamic batcher, a real backend, post-processing — with a
:class:`~mrm_edge.runtime.sources.synthetic.SyntheticSource` at max speed, and checks at the
end (each check PASS or FAIL with its figures, in ``SoakReport``):

* **accounting** — every window accounted for: per stream, classified + rejected + dropped
  equals the windows a stream of that length has (``expected_windows_per_stream``, the
  windower's ``(N − window) // hop + 1`` over the ``N`` model-rate samples the resampler
  releases, ``ceil(n_in · fs_model / fs_in)``; no final partial window is padded). Lost =
  expected − accounted, summed over streams; a window counted twice fails it too.
* **dropped** — none dropped. The soak runs the batcher with ``overload="block"``: a
  max-speed source outruns any backend, so under the monitor's default ``drop-oldest`` it
  would shed windows by design; under ``block`` the source waits for room instead, which is
  exactly what a soak wants to exercise (every window through inference). The wait is
  bounded (``put_timeout_s``, 60 s): a backend stalled that long is a failure to report as a
  dropped window, not a run that hangs.
* **errors** — no run, stream or backend error.
* **rss growth** — resident memory at the end (when the last expected window is
  delivered, before the engine's teardown; at the sink's close if it never is) vs after
  warm-up (the end of the first quarter), in % (default limit 5 %). ``/proc/self/statm``
  (current RSS), sampled every second by a thread, at each quarter boundary, at the last
  window and at close; off Linux, ``resource.getrusage`` (peak RSS, the only figure portable
  Python has).
* **latency** — p99 of window-complete → result in the last quarter vs the first: at most
  ``max_p99_ratio`` × the first (default 1.5) or the first + ``latency_floor_ms`` (20 ms),
  whichever is larger, so tiny latencies do not flap.

Quarters split the span of window end times ``[window, seconds]`` of simulated (signal)
time into four; a window belongs to the quarter its last sample falls in. At max speed every
stream advances round by round, so simulated time tracks wall progress.

Memory stays bounded whatever the length: counters per stream, a fixed-size reservoir of
latencies per quarter (exact percentiles up to ``RESERVOIR_PER_QUARTER`` windows, a uniform
sample beyond), at most ``_MAX_RSS_SAMPLES`` RSS samples (halved, interval doubled, when
full). The engine's own ``Tally`` keeps up to 200,000 latencies (about 6 MB), which the RSS
check sees.

Latency at max speed under ``block`` is mostly queueing: the queue stays full, so a window
waits about ``max_queue / throughput``; hence the soak's default ``max_queue`` of
4 × ``max_batch`` (enough to keep the worker fed), not the monitor's 4096.

Default hop (10 s) and source rate (the model's): the soak's length is set by the windows
it classifies (streams × seconds ÷ hop), so the default hop keeps 500 streams × 1 h at
180,000 windows; hop 1 s would be ten times as many. Generating the signal costs on its own,
in the source thread (one core, the GIL), and at 500 Hz in 0.2 s chunks (the monitor's
defaults) it would cost about as much as the inference; so the soak generates at the model's
rate in 1 s chunks (nothing resamples); ``fs`` / ``--fs 500`` puts the resampler back in.
The measured figures (wall time, windows/s, generation cost) are in the README.
"""
