"""Turning (query, candidate list) into CROSS-JEM encoder inputs.

For one group of candidates the encoder input is `[CLS] q [SEP] u_1 .. u_M` with u the sorted union of the
candidates' word-piece ids (Algorithm 2), and the pooling matrix row of candidate j selects the query tokens, the
[SEP] and the union positions of j's tokens (Section 3.1; Algorithm 1's mask), normalised to a mean.

A list whose union exceeds the capacity L_u is split into groups that fit, formed by token overlap (see
`group_candidates`), which keeps unions small and so needs fewer, shorter encoder passes than splitting in list
order. Groups of many queries are then batched together,
sorted by length so that padding stays small.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass
class Group:
    query: int                 # index of the query in the batch of queries
    items: np.ndarray          # indices of this group's candidates within the query's list
    input_ids: np.ndarray      # [CLS] q [SEP] union
    n_query: int               # len(q) + 2: positions 0 .. n_query-1 are [CLS] q [SEP]
    item_rows: np.ndarray      # for each selected union position: the item (row) it belongs to
    item_cols: np.ndarray      # ... and its position in input_ids
    item_token_pos: np.ndarray  # ... and the token's first position inside its item (Appendix F encodings)


def group_candidates(items: Sequence[np.ndarray], capacity: int) -> list[np.ndarray]:
    """Partition candidate indices into groups whose token unions hold at most `capacity` ids, by overlap.

    Largest items first, each joins the fitting group it adds the fewest new tokens to; an item that shares no
    token with any group seeds a new one. Then, smallest first, each group is folded into the group it overlaps most
    while the merged union still fits: related items end up together and the number of encoder passes stays small.
    """
    sets = [set(t.tolist()) for t in items]
    total = set().union(*sets) if sets else set()
    if len(total) <= capacity:
        return [np.arange(len(items))]
    unions: list[set] = []
    members: list[list[int]] = []
    for i in sorted(range(len(items)), key=lambda i: -len(sets[i])):
        best, best_new = -1, len(sets[i])
        for g, u in enumerate(unions):
            new = len(sets[i] - u)
            if len(u) + new <= capacity and new < best_new:
                best, best_new = g, new
                if new == 0:
                    break
        if best < 0:
            unions.append(set(sets[i]))
            members.append([i])
        else:
            unions[best] |= sets[i]
            members[best].append(i)
    # One pass, smallest group first: fold it into the fitting group it overlaps most.
    for g in sorted(range(len(unions)), key=lambda g: len(unions[g])):
        if not members[g]:
            continue
        best, best_overlap = -1, -1
        for h in range(len(unions)):
            if h == g or not members[h]:
                continue
            overlap = len(unions[g] & unions[h])
            if overlap > best_overlap and len(unions[g]) + len(unions[h]) - overlap <= capacity:
                best, best_overlap = h, overlap
        if best >= 0:
            unions[best] |= unions[g]
            members[best] += members[g]
            unions[g], members[g] = set(), []
    members = [m for m in members if m]
    return [np.array(sorted(m)) for m in members]


def build_group(query: int, query_ids: np.ndarray, items: Sequence[np.ndarray], members: np.ndarray,
                cls_id: int, sep_id: int) -> Group:
    lens = np.array([len(items[i]) for i in members])
    toks = np.concatenate([items[i] for i in members]) if len(members) else np.zeros(0, np.int64)
    union, inverse = np.unique(toks, return_inverse=True)  # sorted union (Algorithm 2, line 9)
    rows = np.repeat(np.arange(len(members)), lens)
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    token_pos = np.arange(len(toks)) - starts
    # A token repeated inside one item occupies one union position; keep its first occurrence.
    _, first = np.unique(rows * (len(union) + 1) + inverse, return_index=True)
    n_query = len(query_ids) + 2
    input_ids = np.concatenate([[cls_id], query_ids, [sep_id], union]).astype(np.int64)
    return Group(query, members, input_ids, n_query, rows[first], inverse[first] + n_query, token_pos[first])


def pack(query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]], capacity: int,
         cls_id: int, sep_id: int) -> list[Group]:
    groups = []
    for q, (qids, items) in enumerate(zip(query_ids, candidates)):
        if len(items) == 0:
            continue
        for members in group_candidates(items, capacity):
            groups.append(build_group(q, qids, items, members, cls_id, sep_id))
    return groups


@dataclass
class Batch:
    input_ids: torch.Tensor       # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    token_type_ids: torch.Tensor  # [B, L]: 0 for [CLS] q [SEP], 1 for the union
    pool: torch.Tensor            # [B, N, L]: row-normalised selective-pooling weights
    pos_index: torch.Tensor       # [B, N, T]: in-item positions of each candidate's pooled union tokens (-1 pad)
    col_index: torch.Tensor       # [B, N, T]: their positions in input_ids (0 where padded)

    def to(self, device) -> "Batch":
        for name in ("input_ids", "attention_mask", "token_type_ids", "pool", "pos_index", "col_index"):
            setattr(self, name, getattr(self, name).to(device, non_blocking=True))
        return self


def collate(groups: Sequence[Group]) -> Batch:
    """Pad groups into one batch and build every pooling matrix with a single scatter (no per-token loops)."""
    b = len(groups)
    seq = max(len(g.input_ids) for g in groups)
    n_items = max(len(g.items) for g in groups)
    input_ids = np.zeros((b, seq), np.int64)
    attention = np.zeros((b, seq), np.int64)
    types = np.zeros((b, seq), np.int64)
    pool = np.zeros((b, n_items, seq), np.float32)
    item_mask = np.zeros((b, n_items), bool)
    for i, g in enumerate(groups):
        n = len(g.input_ids)
        input_ids[i, :n] = g.input_ids
        attention[i, :n] = 1
        types[i, g.n_query:n] = 1
        item_mask[i, : len(g.items)] = True
        pool[i, : len(g.items), : g.n_query] = 1.0  # query tokens + [SEP] (and [CLS], zeroed below)
        pool[i, g.item_rows, g.item_cols] = 1.0
    pool[:, :, 0] = 0.0  # Section 3.1 pools T_q, [SEP] and the item's tokens; [CLS] is not among them
    pool[~item_mask] = 0.0
    counts = pool.sum(-1, keepdims=True)
    pool = np.divide(pool, counts, out=np.zeros_like(pool), where=counts > 0)
    max_tok = max((np.bincount(g.item_rows).max() if len(g.item_rows) else 1) for g in groups)
    pos_index = np.full((b, n_items, max_tok), -1, np.int64)
    col_index = np.zeros((b, n_items, max_tok), np.int64)
    for i, g in enumerate(groups):
        order = np.argsort(g.item_rows, kind="stable")
        rows = g.item_rows[order]
        slot = np.arange(len(rows)) - np.searchsorted(rows, rows)  # rank of each token within its item
        pos_index[i, rows, slot] = g.item_token_pos[order]
        col_index[i, rows, slot] = g.item_cols[order]
    return Batch(torch.from_numpy(input_ids), torch.from_numpy(attention), torch.from_numpy(types),
                 torch.from_numpy(pool), torch.from_numpy(pos_index), torch.from_numpy(col_index))


def batches(groups: Sequence[Group], max_tokens: int, max_groups: int = 64) -> list[list[Group]]:
    """Length-sorted batches holding at most `max_tokens` padded tokens (B x L) and `max_groups` groups."""
    order = sorted(range(len(groups)), key=lambda i: len(groups[i].input_ids))
    out, current, longest = [], [], 0
    for i in order:
        length = len(groups[i].input_ids)
        if current and (max(longest, length) * (len(current) + 1) > max_tokens or len(current) >= max_groups):
            out.append(current)
            current, longest = [], 0
        current.append(groups[i])
        longest = max(longest, length)
    if current:
        out.append(current)
    return out
