"""Metrics and the ranking loss pinned on hand-computed cases."""

import numpy as np
import pytest
import torch

from mkt.training.losses import distillation_loss, ranking_loss
from mkt.training.metrics import average_precisions, f1_at_k, mean_average_precision


def test_ap_is_mean_precision_at_each_positive():
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    labels = np.array([[1], [-1], [1], [-1]])
    # positives at ranks 1 and 3: (1/1 + 2/3) / 2
    assert mean_average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2)


def test_ignored_entries_are_left_out_of_the_ranking():
    scores = np.array([[0.9], [0.8], [0.7]])
    labels = np.array([[-1], [0], [1]])
    # the ignored image at rank 2 does not count: the positive is at rank 2 of 2 -> 1/2
    assert mean_average_precision(scores, labels) == pytest.approx(0.5)


def test_label_without_positives_counts_zero_in_the_mean():
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    labels = np.array([[1, -1], [-1, -1]])
    assert average_precisions(scores, labels).tolist() == [1.0, 0.0]
    assert mean_average_precision(scores, labels) == pytest.approx(0.5)


def test_ties_keep_image_order():
    scores = np.array([[0.5], [0.5], [0.5]])
    labels = np.array([[-1], [1], [-1]])
    assert mean_average_precision(scores, labels) == pytest.approx(0.5)


def test_f1_at_k_is_overall_micro():
    scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.9]])
    labels = np.array([[1, -1, 1], [-1, -1, 1]])
    f1, p, r = f1_at_k(scores, labels, 1)
    # top-1: image 0 -> label 0 (TP), image 1 -> label 2 (TP): P = 2/2, R = 2/3
    assert (p, r) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert f1 == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    f1, p, r = f1_at_k(scores, labels, 2)
    # top-2: image 0 -> labels 0 (TP), 1; image 1 -> labels 2 (TP), 1: P = 2/4, R = 2/3
    assert (p, r) == (pytest.approx(0.5), pytest.approx(2 / 3))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="only 1"):
        mean_average_precision(np.zeros((2, 2)), np.full((2, 2), 2))
    with pytest.raises(ValueError, match="k must be"):
        f1_at_k(np.zeros((2, 2)), np.ones((2, 2)), 3)


def test_ranking_loss_by_hand():
    scores = torch.tensor([[2.0, 1.5, 0.0, 3.0]])
    labels = torch.tensor([[1, 1, -1, 0]])
    # pairs: (p=2.0, n=0.0): max(0, 1 + 0 - 2) = 0; (p=1.5, n=0.0): max(0, 1 - 1.5) = 0 -> loss 0
    assert ranking_loss(scores, labels).item() == pytest.approx(0.0)
    scores = torch.tensor([[0.5, 0.2, 0.4, 9.0]])
    # (0.5 vs 0.4): 1 - 0.1 = 0.9; (0.2 vs 0.4): 1 + 0.2 = 1.2; both violate -> (0.9 + 1.2) / 2
    assert ranking_loss(scores, labels).item() == pytest.approx(1.05, abs=1e-6)


def test_ranking_loss_averages_images_and_skips_ones_without_pairs():
    scores = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([[1, -1], [1, 1]])
    # image 0: one pair, hinge 1 -> 1; image 1: no negatives -> 0; mean 0.5
    assert ranking_loss(scores, labels).item() == pytest.approx(0.5)


def test_ranking_loss_has_gradients_that_separate_positives():
    scores = torch.zeros(1, 3, requires_grad=True)
    ranking_loss(scores, torch.tensor([[1, -1, 0]])).backward()
    assert scores.grad[0, 0] < 0 < scores.grad[0, 1] and scores.grad[0, 2] == 0


def test_distillation_is_l1_to_a_detached_teacher():
    student = torch.ones(2, 4, requires_grad=True)
    teacher = torch.zeros(2, 4, requires_grad=True)
    loss = distillation_loss(student, teacher)
    loss.backward()
    assert loss.item() == pytest.approx(1.0) and teacher.grad is None
