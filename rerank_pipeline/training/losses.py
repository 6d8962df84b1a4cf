"""Listwise and pointwise ranking losses over padded lists.

All take logits `f` [B, N], targets `y` [B, N] (graded labels, or a teacher's probabilities) and a mask [B, N] of
real items, and return the mean loss over lists. A list that carries no training signal contributes 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NEG = -1e4  # large negative logit for padding (finite, so 0 * NEG stays 0 in fp16/bf16 too)


def _masked_log_softmax(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(x.masked_fill(~mask, NEG), dim=-1)


def _mean_over_lists(per_list: torch.Tensor, has_signal: torch.Tensor) -> torch.Tensor:
    n = has_signal.sum()
    return (per_list * has_signal).sum() / n.clamp(min=1)


def _rpl(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, inclusive: bool) -> torch.Tensor:
    y = y.to(f.dtype)
    pair = mask[:, None, :] & mask[:, :, None]
    below = (y[:, None, :] < y[:, :, None]) & pair  # below[b, j, k]: k in L_j
    if inclusive:
        below = below | (torch.eye(y.shape[-1], dtype=torch.bool, device=y.device) & pair)
    below = below.to(f.dtype)
    y_tilde = torch.einsum("bjk,bk->bj", below, y * mask)
    s_tilde = torch.einsum("bjk,bk->bj", below, f.masked_fill(~mask, 0.0))
    total = y_tilde.sum(-1, keepdim=True)
    p_target = torch.where(total > 0, y_tilde / total.clamp(min=1e-12), torch.zeros_like(y_tilde))
    per_list = -(p_target * _masked_log_softmax(s_tilde, mask)).sum(-1)
    return _mean_over_lists(per_list, total.squeeze(-1) > 0)


def rpl_loss(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ranking Probability Loss (CROSS-JEM, Eq. 2 with Corollary 2's normalisation), read literally.

    With L_j = {k : y_k < y_j}: target ~y_j = sum_{k in L_j} y_k, score ~s_j = sum_{k in L_j} f_k, and the loss is
    the cross entropy between ~y / sum(~y) and softmax(~s). With binary labels every ~y_j is 0 (a positive's L_j
    holds only zero-labelled items, a negative's L_j is empty), so such a list has no signal: RPL needs graded or
    real-valued targets, e.g. a pointwise teacher's scores. Item j's own logit never enters ~s_j, so the top
    item gets no gradient at all (tests/test_losses.py).
    """
    return _rpl(f, y, mask, inclusive=False)


def rpl_inclusive_loss(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RPL with L_j = {k : y_k < y_j} plus j itself: each item's own target and logit count, like a Plackett-Luce
    suffix sum (~s_j = f_j + the logits of everything ranked below j). Binary labels now carry signal too."""
    return _rpl(f, y, mask, inclusive=True)


def listnet_loss(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ListNet top-one probability loss (Cao et al. 2007, the paper's Eq. 1 with Phi = exp)."""
    p_target = torch.softmax(y.to(f.dtype).masked_fill(~mask, NEG), dim=-1)
    per_list = -(p_target * _masked_log_softmax(f, mask)).sum(-1)
    return _mean_over_lists(per_list, mask.sum(-1) > 1)


def softmax_ce_loss(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax cross entropy with the targets normalised to a distribution (y / sum y)."""
    y = (y.to(f.dtype) * mask).clamp(min=0)
    total = y.sum(-1, keepdim=True)
    p_target = torch.where(total > 0, y / total.clamp(min=1e-12), torch.zeros_like(y))
    per_list = -(p_target * _masked_log_softmax(f, mask)).sum(-1)
    return _mean_over_lists(per_list, total.squeeze(-1) > 0)


def bce_loss(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pointwise binary cross entropy; targets in [0, 1] (binary labels or teacher probabilities)."""
    per_item = F.binary_cross_entropy_with_logits(f, y.to(f.dtype).clamp(0, 1), reduction="none")
    return (per_item * mask).sum() / mask.sum().clamp(min=1)


def margin_mse_loss(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MarginMSE (Hofstaetter et al. 2020) over every ordered pair of a list: mean ((f_i - f_j) - (t_i - t_j))^2 with
    t the teacher's logits, recovered from the probabilities the loop stores as targets. With e = f - t the pair sum
    is 2 n sum(e^2) - 2 (sum e)^2, so no [N, N] tensor is built."""
    e = (f.float() - torch.logit(y.float(), eps=1e-6)).masked_fill(~mask, 0.0)
    n = mask.sum(-1).float()
    pair_sum = 2 * n * (e ** 2).sum(-1) - 2 * e.sum(-1) ** 2
    per_list = pair_sum / (n * (n - 1)).clamp(min=1)
    return _mean_over_lists(per_list, n > 1)


def kl_loss(f: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Listwise distillation: KL(softmax(t / T) || softmax(f / T)) * T^2 per list, with t the teacher's logits
    recovered from the probabilities the loop stores as targets. T > 1 spreads the teacher's mass over more of
    the list, so the student learns its order below the top, not just the top item; T^2 keeps the gradient's
    scale independent of T (Hinton et al. 2015)."""
    t = torch.logit(y.double().clamp(0, 1), eps=1e-9).float() / temperature
    p_target = torch.softmax(t.masked_fill(~mask, NEG), dim=-1)
    log_student = _masked_log_softmax(f.float() / temperature, mask)
    per_list = (p_target * (torch.log(p_target.clamp(min=1e-30)) - log_student)).masked_fill(~mask, 0.0).sum(-1)
    return _mean_over_lists(per_list * temperature ** 2, mask.sum(-1) > 1)


LOSSES = {"rpl": rpl_loss, "rpl-inclusive": rpl_inclusive_loss, "listnet": listnet_loss, "ce": softmax_ce_loss,
          "bce": bce_loss, "margin-mse": margin_mse_loss, "kl": kl_loss}
