"""The defaults of TrainConfig are the paper's recipe."""

from mrm_edge.training.config import TrainConfig


def test_the_defaults_are_the_papers_recipe() -> None:
    cfg = TrainConfig(data="d", out="o")
    assert (cfg.lr, cfg.batch_size, cfg.epochs) == (1e-3, 64, 100)
    assert (cfg.train_folds, cfg.val_folds, cfg.test_folds) == (tuple(range(1, 9)), (9,), (10,))
    d = cfg.to_dict()
    assert isinstance(d["loss"], dict) and d["model_overrides"] == {}
