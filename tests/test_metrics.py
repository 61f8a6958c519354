"""The paper's metrics against values computed by hand."""

import numpy as np
import pytest

from mrm_edge.metrics import (
    element_accuracy,
    macro_auc,
    roc_auc_per_label,
    sample_f1,
    tune_thresholds,
)

Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
P = np.array([[0.9, 0.2], [0.4, 0.6], [0.3, 0.8], [0.1, 0.7]])


def test_auc_by_hand() -> None:
    # Label 0: positives {0.9, 0.3}, negatives {0.4, 0.1}: pairs won 0.9>0.4, 0.9>0.1,
    # 0.3>0.1, lost 0.3<0.4 -> 3/4. Label 1: positives {0.6, 0.8}, negatives {0.2, 0.7}:
    # 0.6>0.2, 0.8>0.2, 0.8>0.7, 0.6<0.7 -> 3/4.
    np.testing.assert_allclose(roc_auc_per_label(Y, P), [0.75, 0.75])
    assert macro_auc(Y, P) == pytest.approx(0.75)


def test_auc_ties_count_half() -> None:
    y = np.array([[1], [0], [1], [0]])
    p = np.array([[0.5], [0.5], [0.9], [0.1]])
    # pairs: (0.5 vs 0.5) tie 0.5, (0.5 vs 0.1) 1, (0.9 vs 0.5) 1, (0.9 vs 0.1) 1 -> 3.5/4
    assert macro_auc(y, p) == pytest.approx(0.875)


def test_auc_skips_single_class_labels() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.2]])
    per = roc_auc_per_label(y, p)
    assert per[0] == 1.0 and np.isnan(per[1])
    assert macro_auc(y, p) == 1.0


def test_auc_agrees_with_sklearn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random((200, 5)) < 0.3
    p = np.round(rng.random((200, 5)) * 0.5 + 0.4 * y, 2)  # rounded: plenty of ties
    assert macro_auc(y, p) == pytest.approx(sk.roc_auc_score(y, p, average="macro"))


def test_element_accuracy_by_hand() -> None:
    # predictions at 0.5: [[1,0],[0,1],[0,1],[0,1]] vs Y: wrong at (2,0) and (3,1) -> 6/8
    assert element_accuracy(Y, P) == pytest.approx(0.75)


def test_sample_f1_by_hand() -> None:
    # rows: [tp1 fp0 fn0]=1, [tp1]=1, [tp1 fn1]=2/3, [fp1] -> 0
    assert sample_f1(Y, P) == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    # no true and no predicted label: 0 (sklearn's binary f1 default)
    assert sample_f1(np.array([[0, 0]]), np.array([[0.1, 0.2]])) == 0.0


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same"):
        macro_auc(Y, P[:3])


def test_thresholds_maximise_f1() -> None:
    y = np.array([[1], [1], [0], [0], [1]])
    p = np.array([[0.30], [0.25], [0.2], [0.1], [0.9]])
    # cutting at 0.25 catches all three positives and no negative: F1 = 1
    assert tune_thresholds(y, p)[0] == pytest.approx(0.25)
    assert tune_thresholds(np.zeros((3, 1)), np.ones((3, 1)))[0] == 0.5
