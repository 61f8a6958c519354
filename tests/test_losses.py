"""The mutual-learning loss: KL pairs and the total of eq. (7)."""

import pytest
import torch

from mrm_edge.losses import (
    DistillationLoss,
    LossConfig,
    MutualLearningLoss,
    mutual_kl,
    soft_label_kl,
)
from mrm_edge.model import MRMNet, MRMNetConfig


def test_kl_is_zero_for_identical_inputs() -> None:
    a = torch.randn(4, 16, 50)
    assert mutual_kl(a, a.clone()).item() == pytest.approx(0.0, abs=1e-7)
    # Same elements, other shape (C × 2N vs 2C × N): still identical after flattening.
    assert mutual_kl(a, a.reshape(4, 32, 25)).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_is_positive_and_symmetric() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(4, 16, 50), torch.randn(4, 32, 25)
    ab, ba = mutual_kl(a, b), mutual_kl(b, a)
    assert ab.item() > 0
    torch.testing.assert_close(ab, ba)


def test_kl_matches_the_textbook_definition() -> None:
    torch.manual_seed(3)
    a, b, t = torch.randn(3, 7), torch.randn(3, 7), 4.0
    pa, pb = torch.softmax(a / t, 1), torch.softmax(b / t, 1)
    kl = lambda p, q: (p * (p.log() - q.log())).sum(1)  # noqa: E731
    expected = ((kl(pa, pb) + kl(pb, pa)).mean() * t * t).item()
    assert mutual_kl(a, b, t).item() == pytest.approx(expected, rel=1e-5)


def test_kl_rejects_pairs_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="equal per-sample sizes"):
        mutual_kl(torch.randn(2, 10), torch.randn(2, 11))


def test_paper_weights_are_the_defaults() -> None:
    cfg = LossConfig()
    assert (cfg.alpha, cfg.beta, cfg.gamma, cfg.temperature) == (0.01, 0.01, 0.1, 4.0)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    net = MRMNet(MRMNetConfig(n_labels=3, width=16, stem_channels=(8, 8, 16, 16)))
    loss_fn = MutualLearningLoss()
    x = torch.randn(8, 12, 1000)
    y = (torch.rand(8, 3) > 0.5).float()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    losses = []
    for _ in range(8):
        loss, parts = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert set(parts) == {"bce_low", "bce_high", "kl_z1_z2", "kl_z3_z4", "kl_out"}
    assert losses[-1] < 0.8 * losses[0]


def test_total_is_the_weighted_sum() -> None:
    torch.manual_seed(4)
    net = MRMNet(MRMNetConfig(n_labels=3, width=16, stem_channels=(8, 8, 16, 16))).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 12, 1000))
    y = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    cfg = LossConfig(alpha=0.5, beta=0.25, gamma=2.0)
    total, p = MutualLearningLoss(cfg)(out, y)
    expected = (
        p["bce_low"]
        + p["bce_high"]
        + 0.5 * p["kl_z1_z2"]
        + 0.25 * p["kl_z3_z4"]
        + 2.0 * p["kl_out"]
    )
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_soft_label_kl_is_zero_when_the_student_agrees_and_grows_apart() -> None:
    torch.manual_seed(4)
    logits, t = torch.randn(6, 5) * 3, 2.0
    teacher = torch.sigmoid(logits / t)
    assert soft_label_kl(logits, teacher, t).item() == pytest.approx(0.0, abs=1e-6)
    near = soft_label_kl(logits + 0.5, teacher, t).item()
    far = soft_label_kl(logits + 2.0, teacher, t).item()
    assert 0 < near < far
    # The textbook per-label binary KL, mean over labels and records, T²-scaled.
    q = torch.sigmoid((logits + 2.0) / t)
    p = teacher
    kl = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    assert far == pytest.approx((kl.mean() * t * t).item(), rel=1e-5)


def test_distillation_loss_is_the_paper_loss_plus_alpha_times_the_teacher_term() -> None:
    torch.manual_seed(5)
    net = MRMNet(MRMNetConfig(n_labels=5, width=8, stem_channels=(8, 8, 8, 8))).eval()
    out, y = net(torch.randn(4, 12, 1000)), (torch.rand(4, 5) > 0.5).float()
    teacher = torch.rand(4, 5)
    paper, _ = MutualLearningLoss()(out, y)
    none, parts = DistillationLoss(None, alpha=0.0, temperature=2.0)(out, y, teacher)
    some, _ = DistillationLoss(None, alpha=0.5, temperature=2.0)(out, y, teacher)
    torch.testing.assert_close(none, paper)
    assert parts["kd"] > 0
    assert some.item() == pytest.approx(paper.item() + 0.5 * parts["kd"], rel=1e-5)
