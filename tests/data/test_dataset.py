"""mrm_edge.data.dataset (the container and stack_records) and mrm_edge.data.loaders."""

import subprocess
import sys

import numpy as np
import pytest

from mrm_edge.data.dataset import LEADS, stack_records
from mrm_edge.data.errors import DataError
from mrm_edge.data.loaders import load_dataset


def test_stack_records_fills_signals_and_multi_hot_labels() -> None:
    items = [("a", ["X"]), ("b", ["X", "Y"]), ("c", [])]

    def read(item):
        name, labels = item
        return np.full((len(LEADS), 4), ord(name), np.float32), labels

    x, y = stack_records(items, ["X", "Y"], 4, read)
    assert x.shape == (3, 12, 4) and x.dtype == np.float32 and x[1, 0, 0] == ord("b")
    np.testing.assert_array_equal(y, [[1, 0], [1, 1], [0, 0]])


def test_load_dataset_rejects_unknown_names_and_tasks(tmp_path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'mitbih'"):
        load_dataset("mitbih", tmp_path)
    with pytest.raises(DataError, match="not available for cpsc2018"):
        load_dataset("cpsc2018", tmp_path, task="rhythm")


def test_leads_import_no_loader() -> None:
    """The runtime's LEADS import must not pull the dataset loaders in."""
    code = (
        "import sys, mrm_edge.data.dataset; "
        "print(sorted(m for m in sys.modules if m.startswith('mrm_edge.data.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ptbxl" not in out.stdout and "cpsc2018" not in out.stdout, out.stdout
