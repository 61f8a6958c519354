"""The 12-lead page (``mrm-edge predict --plot``): layout 3 x 4 + rhythm strip, to scale
(25 mm/s, 10 mm/mV), as SVG (pure Python) and PNG (matplotlib)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mrm_edge.data.dataset import LEADS
from mrm_edge.ecgplot import save_twelve_lead

NS = {"s": "http://www.w3.org/2000/svg"}


def _signal(fs: int = 500) -> np.ndarray:
    x = np.zeros((12, 10 * fs), np.float32)
    x[LEADS.index("I"), fs:] = 1.0  # a 1 mV step at 1 s in lead I
    return x


def _svg(tmp_path, x: np.ndarray, fs: int, **heading) -> ET.Element:
    return ET.parse(save_twelve_lead(tmp_path / "page.svg", x, fs, **heading)).getroot()


def test_svg_layout_is_to_scale(tmp_path):
    root = _svg(tmp_path, _signal(), 500, title="bed 3", probabilities={"MI": 0.7}, findings=["MI"])
    assert root.get("width") == "250.0mm" and root.get("viewBox") == "0 0 250.0 130.0"
    labels = [t.text for t in root.iterfind("s:text", NS)]
    assert sorted(labels[:-1]) == sorted([*LEADS, "II"])  # 12 cells + the rhythm strip
    assert "bed 3" in labels[-1] and "MI 0.70" in labels[-1] and "25 mm/s" in labels[-1]
    lines = root.findall("s:polyline", NS)
    assert len(lines) == 13
    pts = np.array([p.split(",") for p in lines[0].get("points").split()], float)  # lead I
    assert pts[1, 0] - pts[0, 0] == pytest.approx(25 / 500, abs=0.01)  # 25 mm/s at 500 Hz
    assert pts[0, 1] - pts[-1, 1] == pytest.approx(10.0)  # 1 mV = 10 mm, upwards
    assert pts[-1, 0] == pytest.approx(62.45, abs=0.01)  # the first column is 2.5 s wide


def test_nan_breaks_the_trace(tmp_path):
    x = _signal(100)
    x[LEADS.index("II"), 100:150] = np.nan  # inside 0-2.5 s: its cell and the strip
    root = _svg(tmp_path, x, 100)
    assert len(root.findall("s:polyline", NS)) == 15  # II's cell and rhythm strip split


def test_png_and_bad_suffix(tmp_path):
    pytest.importorskip("matplotlib", reason="PNG needs: pip install 'mrm-edge[plot]'")
    out = save_twelve_lead(tmp_path / "v.png", _signal(), 500, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    with pytest.raises(ValueError, match=r"--plot .*v.pdf: expected a .svg or .png"):
        save_twelve_lead(tmp_path / "v.pdf", _signal(), 500)
    with pytest.raises(ValueError, match="cannot write"):
        save_twelve_lead(tmp_path / "missing" / "v.svg", _signal(), 500)


@pytest.mark.realdata
def test_predict_plot_on_a_real_record(ptbxl_root, tmp_path):
    record = ptbxl_root / "records500" / "00000" / "00271_hr.hea"
    out = tmp_path / "view.svg"
    r = subprocess.run(
        [sys.executable, "-m", "mrm_edge.cli", "predict", str(record), "--plot", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"12-lead view: {out}" in r.stderr
    title = ET.parse(out).getroot().findall("s:text", NS)[-1].text
    assert "00271_hr 0-10 s" in title and "MI" in title and "STTC" in title
    bad = subprocess.run(
        [sys.executable, "-m", "mrm_edge.cli", "predict", str(record), "--plot", "x.pdf"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "expected a .svg or .png" in bad.stderr
