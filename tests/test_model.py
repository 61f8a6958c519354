"""MRM-Net shapes, presets and the inference path."""

import pytest
import torch

from mrm_edge.model import (
    PRESETS,
    InferenceModel,
    MRMNet,
    MRMNetConfig,
    count_parameters,
    preset,
)


@pytest.mark.parametrize(("name", "width"), [("paper", 128), ("small", 64)])
def test_preset_shapes_for_1000_samples(name: str, width: int) -> None:
    torch.manual_seed(0)
    cfg = preset(name, n_labels=5)
    net = MRMNet(cfg).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 12, 1000))
    # The spec: Z1 is C × 502 and Z2 is 2C × 251 — equal element counts.
    assert out.z1.shape == (2, width, 502)
    assert out.z2.shape == (2, 2 * width, 251)
    assert out.z3.shape == out.z1.shape
    assert out.z4.shape == out.z2.shape
    assert out.out1.shape == out.out2.shape == (2, 5)
    assert out.z1[0].numel() == out.z2[0].numel()


def test_presets_differ_only_in_width() -> None:
    paper, small = preset("paper"), preset("small")
    assert paper.width == 128 and small.width == 64
    assert paper.stem_channels == small.stem_channels == (32, 64, 128, 128)  # Table I
    assert paper.stem_kernels == (11, 7, 5, 3)
    assert paper.fusion_kernels == (3, 13, 23, 33)
    assert count_parameters(MRMNet(paper)) > 2 * count_parameters(MRMNet(small))


def test_edge_preset_narrows_the_stem_too() -> None:
    edge = preset("edge")
    assert edge.width == 32 and edge.stem_channels == (16, 32, 32, 32)
    sizes = [count_parameters(MRMNet(preset(n))) for n in ("paper", "small", "edge")]
    assert sizes == sorted(sizes, reverse=True)  # each smaller than the one before
    assert sizes[-1] == 397_466  # the shipped edge model's card says so too
    torch.manual_seed(0)
    out = MRMNet(edge).eval()(torch.randn(1, 12, 1000))
    assert out.z1.shape == (1, 32, 502) and out.z2.shape == (1, 64, 251)


def test_the_commands_offer_every_preset() -> None:
    from mrm_edge.cli.train import PRESET_NAMES

    assert tuple(PRESETS) == PRESET_NAMES


def test_the_shipped_card_loads_into_the_paper_preset() -> None:
    """Old cards load unchanged: the shipped one (written before the edge presets) names the
    paper's shape field by field."""
    from mrm_edge.artifacts import SHIPPED_MODEL_DIR
    from mrm_edge.checkpoint import load_model_dir

    net, card = load_model_dir(SHIPPED_MODEL_DIR)
    assert card.preset == "paper"
    assert net.cfg == preset("paper", n_labels=5)
    assert count_parameters(net) == count_parameters(MRMNet(preset("paper")))


def test_unknown_preset_and_bad_config_raise() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="head_fusion"):
        MRMNetConfig(head_fusion="max")  # type: ignore[arg-type]


def test_config_round_trips_through_dict() -> None:
    cfg = preset("small", n_labels=9, head_fusion="low")
    assert MRMNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        MRMNetConfig.from_dict({**cfg.to_dict(), "depth": 3})


def tiny_net(n_labels: int = 3) -> MRMNet:
    return MRMNet(MRMNetConfig(n_labels=n_labels, width=16, stem_channels=(8, 8, 16, 16)))


def test_predict_proba_matches_the_heads() -> None:
    torch.manual_seed(1)
    net = tiny_net().eval()
    x = torch.randn(4, 12, 1000)
    with torch.no_grad():
        o = net(x)
        p_low, p_high = torch.sigmoid(o.out1), torch.sigmoid(o.out2)
        torch.testing.assert_close(net.predict_proba(x, "low"), p_low)
        torch.testing.assert_close(net.predict_proba(x, "high"), p_high)
        torch.testing.assert_close(net.predict_proba(x), (p_low + p_high) / 2)
        fused = net.predict_proba(x)
    assert ((fused > 0) & (fused < 1)).all()


def test_inference_model_bakes_in_standardisation() -> None:
    torch.manual_seed(2)
    net = tiny_net().eval()
    mean, std = torch.linspace(-0.2, 0.2, 12), torch.linspace(0.5, 2.0, 12)
    wrapped = InferenceModel(net, mean, std).eval()
    x = torch.randn(3, 12, 1000)
    with torch.no_grad():
        expected = net.predict_proba((x - mean[None, :, None]) / std[None, :, None])
        torch.testing.assert_close(wrapped(x), expected, rtol=1e-5, atol=1e-6)


def test_other_window_lengths_work() -> None:
    cfg = MRMNetConfig(n_labels=2, n_samples=5000, width=16, stem_channels=(8, 8, 16, 16))
    net = MRMNet(cfg).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 12, 5000))
    # Each of the 4 stem pools adds one sample (5004), Z1 halves it, Z2 halves it twice.
    assert out.z1.shape[1:] == (16, 2502)
    assert out.z2.shape[1:] == (32, 1251)
