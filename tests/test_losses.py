import math

import pytest
import torch

from rerank_pipeline.training.losses import (bce_loss, listnet_loss, margin_mse_loss, rpl_inclusive_loss, rpl_loss,
                                             softmax_ce_loss)


def test_rpl_hand_computed_example():
    # y = (0.9, 0.5, 0.1): L_1 = {2, 3}, L_2 = {3}, L_3 = {}.
    # ~y = (0.5 + 0.1, 0.1, 0) -> normalised (6/7, 1/7, 0); ~s = (f2 + f3, f3, 0) = (5, 3, 0).
    f = torch.tensor([[1.0, 2.0, 3.0]])
    y = torch.tensor([[0.9, 0.5, 0.1]])
    mask = torch.ones_like(f, dtype=torch.bool)
    z = math.exp(5) + math.exp(3) + math.exp(0)
    expected = -(6 / 7 * math.log(math.exp(5) / z) + 1 / 7 * math.log(math.exp(3) / z))
    assert rpl_loss(f, y, mask).item() == pytest.approx(expected, rel=1e-6)


def test_rpl_ignores_padding_and_ties():
    f = torch.tensor([[1.0, 2.0, 3.0, 7.0]])
    y = torch.tensor([[0.9, 0.5, 0.1, 0.95]])
    mask = torch.tensor([[True, True, True, False]])
    assert rpl_loss(f, y, mask).item() == pytest.approx(rpl_loss(f[:, :3], y[:, :3], mask[:, :3]).item())
    # Tied targets are not "below" each other: y = (0.5, 0.5, 0.1) gives ~y = (0.1, 0.1, 0), ~s = (f3, f3, 0).
    tied = rpl_loss(torch.tensor([[0.0, 9.0, 2.0]]), torch.tensor([[0.5, 0.5, 0.1]]), torch.ones(1, 3, dtype=torch.bool))
    z = 2 * math.exp(2) + 1
    assert tied.item() == pytest.approx(-math.log(math.exp(2) / z), rel=1e-6)


def test_rpl_binary_labels_carry_no_signal():
    # A positive's L_j holds only 0-labelled items, a negative's L_j is empty: every ~y_j is 0.
    f = torch.tensor([[0.3, -1.0, 2.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0]])
    loss = rpl_loss(f, y, torch.ones_like(y, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(f.grad) == 0


def test_other_losses_against_formulas():
    f = torch.tensor([[2.0, 0.0, -1.0]])
    y = torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.ones_like(f, dtype=torch.bool)
    log_p = torch.log_softmax(f, -1)[0]
    p_y = torch.softmax(y, -1)[0]
    assert listnet_loss(f, y, mask).item() == pytest.approx(-(p_y * log_p).sum().item(), rel=1e-6)
    assert softmax_ce_loss(f, y, mask).item() == pytest.approx(-(2 / 3 * log_p[0] + 1 / 3 * log_p[1]).item(), rel=1e-6)
    yb = torch.tensor([[1.0, 0.0, 0.0]])
    sig = torch.sigmoid(f[0])
    expected = -(torch.log(sig[0]) + torch.log(1 - sig[1]) + torch.log(1 - sig[2])).item() / 3
    assert bce_loss(f, yb, mask).item() == pytest.approx(expected, rel=1e-6)


def test_losses_decrease_when_scores_follow_targets():
    y = torch.tensor([[0.9, 0.6, 0.3, 0.1]])
    mask = torch.ones_like(y, dtype=torch.bool)
    good, bad = torch.tensor([[3.0, 2.0, 1.0, 0.0]]), torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    for loss in (listnet_loss, softmax_ce_loss, bce_loss):
        assert loss(good, y, mask) < loss(bad, y, mask), loss.__name__


def test_rpl_as_written_pulls_lower_items_up():
    """Eq. 2 taken literally: ~s_j sums the logits of the items *below* j, so the top item's logit appears in no
    ~s and gets no gradient, and descending the loss raises the logits of the lowest-ranked items. We implement the
    equation as written and report this (the loss ablation shows what it does to ranking quality)."""
    y = torch.tensor([[0.9, 0.6, 0.3, 0.1]])
    f = torch.tensor([[3.0, 2.0, 1.0, 0.0]], requires_grad=True)
    rpl_loss(f, y, torch.ones_like(y, dtype=torch.bool)).backward()
    assert f.grad[0, 0] == 0.0
    assert f.grad[0, 3] < 0  # gradient descent increases the last item's logit


def test_rpl_inclusive_against_explicit_suffix_sums():
    # L_j with j itself: y = (0.9, 0.5, 0.1) -> ~y = (1.5, 0.6, 0.1), ~s = (f1+f2+f3, f2+f3, f3) = (6, 5, 3).
    f = torch.tensor([[1.0, 2.0, 3.0]])
    y = torch.tensor([[0.9, 0.5, 0.1]])
    mask = torch.ones_like(f, dtype=torch.bool)
    s_tilde = torch.tensor([6.0, 5.0, 3.0])
    p = torch.tensor([1.5, 0.6, 0.1]) / 2.2
    expected = -(p * torch.log_softmax(s_tilde, -1)).sum().item()
    assert rpl_inclusive_loss(f, y, mask).item() == pytest.approx(expected, rel=1e-6)


def test_rpl_inclusive_gives_every_item_gradient_and_binary_signal():
    y = torch.tensor([[0.9, 0.6, 0.3, 0.1]])
    f = torch.tensor([[0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    rpl_inclusive_loss(f, y, torch.ones_like(y, dtype=torch.bool)).backward()
    assert torch.count_nonzero(f.grad) == 4
    assert f.grad[0, 0] < 0  # descending raises the top item's logit, unlike the literal reading
    fb = torch.tensor([[0.3, -1.0, 2.0]], requires_grad=True)
    loss = rpl_inclusive_loss(fb, torch.tensor([[1.0, 0.0, 0.0]]), torch.ones(1, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() > 0 and fb.grad[0, 0] < 0


def test_margin_mse_against_explicit_pairs():
    torch.manual_seed(0)
    f = torch.randn(3, 5)
    p = torch.rand(3, 5) * 0.98 + 0.01
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    t = torch.log(p / (1 - p))
    per_list = []
    for b in range(2):  # the third list has one item: no pair, no signal
        n = int(mask[b].sum())
        pairs = [((f[b, i] - f[b, j]) - (t[b, i] - t[b, j])) ** 2 for i in range(n) for j in range(n) if i != j]
        per_list.append(sum(pairs) / len(pairs))
    assert margin_mse_loss(f, p, mask).item() == pytest.approx(float(sum(per_list) / 2), rel=1e-5)
    assert margin_mse_loss(t + 3.0, p, mask).item() == pytest.approx(0.0, abs=1e-5)  # a shift keeps every margin
