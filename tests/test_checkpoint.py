"""Model directories: safetensors weights + card, integrity checked on load."""

import json
from pathlib import Path

import pytest
import torch

from mrm_edge.card import ModelCardError
from mrm_edge.checkpoint import inference_model, load_model_dir, save_model_dir
from mrm_edge.fileio import sha256_file
from mrm_edge.model import MRMNet, MRMNetConfig
from tests.test_card import make_card


@pytest.fixture
def model_dir(tmp_path: Path) -> tuple[Path, MRMNet]:
    torch.manual_seed(0)
    net = MRMNet(MRMNetConfig(n_labels=2, width=16, stem_channels=(8, 8, 16, 16))).eval()
    save_model_dir(tmp_path / "m", net, make_card())
    return tmp_path / "m", net


def test_round_trip_gives_identical_outputs(model_dir) -> None:
    path, net = model_dir
    loaded, card = load_model_dir(path)
    assert card.weights["sha256"] and card.architecture["width"] == 16
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_proba(x), net.predict_proba(x))
        assert inference_model(loaded, card)(x).shape == (2, 2)


def test_weights_are_not_pickle(model_dir) -> None:
    path, _ = model_dir
    head = (path / "model.safetensors").read_bytes()[:16]
    assert not head.startswith(b"\x80")  # pickle protocol marker
    assert not (path / "model.safetensors").read_bytes().startswith(b"PK")  # torch zip


def test_corrupted_weights_are_refused(model_dir) -> None:
    path, _ = model_dir
    w = path / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match="SHA-256 does not match"):
        load_model_dir(path)


def test_missing_weights_are_refused(model_dir) -> None:
    path, _ = model_dir
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelCardError, match="weights file missing"):
        load_model_dir(path)


def test_truncated_weights_without_a_checksum_are_refused(model_dir) -> None:
    path, _ = model_dir
    card = json.loads((path / "card.json").read_text())
    del card["weights"]["sha256"]  # nothing to compare with: the header's sizes still tell
    (path / "card.json").write_text(json.dumps(card))
    w = path / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[:-10])
    with pytest.raises(ModelCardError, match=r"not a complete safetensors file .*truncated"):
        load_model_dir(path)


def test_checksum_mismatch_names_expected_and_found(model_dir) -> None:
    path, _ = model_dir
    expected = json.loads((path / "card.json").read_text())["weights"]["sha256"]
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-1])
    with pytest.raises(ModelCardError) as e:
        load_model_dir(path)
    assert f"expected {expected[:12]}..., found {sha256_file(w)[:12]}..." in str(e.value)
