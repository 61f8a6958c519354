"""The watched inbox's throughput: N PTB-XL records (100 Hz WFDB, header and signal file)
put in a fresh inbox, then ``mrm-edge monitor --source watch:DIR`` started on it::

    python -m benchmarks.inbox --records 200 --backend onnxruntime --max-delay 50

Files per second from the ledger: records over the time from the first record's claim to
the last one's outcome (model load and the settle time before the first are left out).
Beside it, the backend's share (inference seconds per record, from the run's summary), so
the rest (reading, hashing, the ledger, the moves, the batcher's wait) is seen. One JSON
line. Needs the PTB-XL records in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PTBXL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ptb-xl" / "records100"
MODEL = Path(__file__).resolve().parents[1] / "models" / "mrm-net-ptbxl-superdiagnostic"


def measure(records: int, backend: str, precision: str | None, max_delay_ms: float) -> dict:
    headers = sorted(PTBXL.glob("*/*.hea"))[:records]
    if len(headers) < records:
        raise SystemExit(f"{PTBXL}: {len(headers)} records, {records} asked for")
    with tempfile.TemporaryDirectory(prefix="inbox-bench-") as tmp:
        inbox, events = Path(tmp) / "inbox", Path(tmp) / "events.jsonl"
        inbox.mkdir()
        for h in headers:
            shutil.copyfile(h.with_suffix(".dat"), inbox / h.with_suffix(".dat").name)
            shutil.copyfile(h, inbox / h.name)
        cmd = [Path(sys.executable).parent / "mrm-edge", "monitor", "--model", MODEL,
               "--source", f"watch:{inbox}", "--no-ui", "--backend", backend,
               "--max-delay", str(max_delay_ms), "--events", events,
               *(["--precision", precision] if precision else [])]  # fmt: skip
        err = (Path(tmp) / "stderr.txt").open("w")
        mon = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        try:
            ledger = inbox / ".mrm-edge-inbox" / "ledger.sqlite"
            deadline = time.monotonic() + 60 + records
            while _moved(ledger) < records:
                if time.monotonic() > deadline or mon.poll() is not None:
                    tail = (Path(tmp) / "stderr.txt").read_text()[-2000:]
                    raise SystemExit(f"the monitor did not finish {records} records:\n{tail}")
                time.sleep(0.2)
            mon.send_signal(signal.SIGTERM)
            mon.wait(60)
        finally:
            mon.kill()
            err.close()
        with sqlite3.connect(ledger) as db:
            (first, last), states = (
                db.execute("SELECT MIN(claimed_at), MAX(finished_at) FROM files").fetchone(),
                dict(db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()),
            )
        lines = [json.loads(s) for s in events.read_text().splitlines()]
    summary = next(e for e in lines if e["type"] == "summary")
    start = next(e for e in lines if e["type"] == "start")
    backend_s = summary["classified"] / summary["inference_wps"] if summary["inference_wps"] else 0
    return {
        "records": records,
        "states": states,
        "backend": start["backend"],
        "max_delay_ms": max_delay_ms,
        "seconds": round(last - first, 2),
        "files_per_s": round(records / (last - first), 2),
        "ms_per_file": round(1e3 * (last - first) / records, 1),
        "backend_ms_per_file": round(1e3 * backend_s / records, 1),
        "windows": summary["windows"],
    }


def _moved(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    with sqlite3.connect(ledger) as db:
        return int(db.execute("SELECT COUNT(*) FROM files WHERE moved = 1").fetchone()[0])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--max-delay", type=float, default=50.0, help="ms (the monitor's default)")
    args = ap.parse_args(argv)
    result: dict[str, Any] = measure(args.records, args.backend, args.precision, args.max_delay)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
