"""Choosing the best epoch by validation macro-AUC."""

import torch

from mrm_edge.training.selection import BestEpoch, best_epoch


def test_the_best_epoch_keeps_a_copy_of_its_weights_only_when_it_improves() -> None:
    net = torch.nn.Linear(2, 1)
    best = BestEpoch()
    assert best.offer(0.6, net) and best.auc == 0.6
    kept = best.weights["weight"].clone()
    with torch.no_grad():
        net.weight.add_(1.0)  # a copy: later training does not change the kept weights
    torch.testing.assert_close(best.weights["weight"], kept)
    assert not best.offer(0.6, net) and not best.offer(0.5, net)
    torch.testing.assert_close(best.weights["weight"], kept)
    assert best.offer(0.7, net) and best.auc == 0.7
    torch.testing.assert_close(best.weights["weight"], net.weight.detach())


def test_best_epoch_is_the_highest_fused_validation_auc() -> None:
    history = [
        {"epoch": e, "val": {"fused": {"auc": auc}, "low": {"auc": 0.99}}}
        for e, auc in [(1, 0.7), (2, 0.8), (3, 0.75)]
    ]
    assert best_epoch(history) == 2
