"""Turning (query, candidate list) into CROSS-JEM encoder inputs.

For one group of candidates the encoder input is `[CLS] q [SEP] u_1 .. u_M` with u the sorted union of the
candidates' word-piece ids (Algorithm 2), and candidate j pools (a mean) the query tokens, the [SEP] and the union
positions of j's tokens (Section 3.1; Algorithm 1's mask), given as index arrays rather than a dense matrix.

A list whose union exceeds the capacity L_u is split into groups that fit, formed by token overlap (see
`group_candidates`), which keeps unions small and so needs fewer, shorter encoder passes than splitting in list
order. Groups of many queries are then batched together,
sorted by length so that padding stays small.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class Group:
    query: int                 # index of the query in the batch of queries
    items: np.ndarray          # indices of this group's candidates within the query's list
    input_ids: np.ndarray      # [CLS] q [SEP] union
    n_query: int               # len(q) + 2: positions 0 .. n_query-1 are [CLS] q [SEP]
    item_rows: np.ndarray      # for each selected union position: the item (row) it belongs to
    item_cols: np.ndarray      # ... and its position in input_ids
    item_token_pos: np.ndarray  # ... and the token's first position inside its item (Appendix F encodings)


def _token_codes(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item lengths, every token as a dense code 0..V-1, code -> token id). Codes keep the order of token ids, so
    sorting codes sorts ids (Algorithm 2's sorted union). One lookup table, no sort: O(T + vocabulary)."""
    lens = np.fromiter((len(t) for t in items), np.int64, len(items))
    flat = np.concatenate(items).astype(np.int64, copy=False) if len(items) else np.zeros(0, np.int64)
    if not len(flat):
        return lens, flat, flat
    present = np.zeros(int(flat.max()) + 1, np.bool_)
    present[flat] = True
    return lens, (np.cumsum(present) - 1)[flat], np.flatnonzero(present)


# Below this many candidate tokens in a list the grouping kernels run as plain Python (~25 ms for 100 titles):
# importing numba and loading its cached machine code costs ~1 s in a fresh process, i.e. most of a CLI search.
NUMBA_MIN_TOKENS = 2048


class _Kernel:
    """A grouping kernel: `kernel(fast)` is the function compiled by numba (once, cached on disk) or, for small
    lists, the function itself. Both give the same results; `kernel.py_func` is the Python one."""

    def __init__(self, fn):
        self.py_func, self._compiled = fn, None

    def __call__(self, fast: bool):
        if not fast:
            return self.py_func
        if self._compiled is None:
            try:
                from numba import njit
            except ImportError:  # numba is a dependency; plain Python gives the same groups, only slower
                self._compiled = self.py_func
            else:
                self._compiled = njit(cache=True, nogil=True)(self.py_func)
        return self._compiled


@_Kernel
def _distinct_per_item(lens, codes, n_tokens):  # pragma: no cover - compiled
    """Each item's distinct codes in order of first occurrence, as CSR (ptr, codes), with each one's first
    position inside its item (Appendix F). A token repeated in an item occupies one union position."""
    ptr = np.zeros(len(lens) + 1, np.int64)
    out = np.empty(len(codes), np.int64)
    pos = np.empty(len(codes), np.int64)
    seen = np.full(max(n_tokens, 1), -1, np.int64)
    k = start = 0
    for i in range(len(lens)):
        for j in range(lens[i]):
            c = codes[start + j]
            if seen[c] != i:
                seen[c] = i
                out[k] = c
                pos[k] = j
                k += 1
        start += lens[i]
        ptr[i + 1] = k
    return ptr, out[:k], pos[:k]


@_Kernel
def _union_layout(ptr, codes, group_of, n_groups, n_tokens):  # pragma: no cover - compiled
    """Per group, its sorted union of codes (CSR: union_ptr, union_codes), and for every distinct (item, token)
    entry the token's index in its group's union."""
    has = np.zeros((n_groups, max(n_tokens, 1)), np.bool_)
    for i in range(len(ptr) - 1):
        for k in range(ptr[i], ptr[i + 1]):
            has[group_of[i], codes[k]] = True
    rank = np.empty((n_groups, max(n_tokens, 1)), np.int64)
    union_ptr = np.zeros(n_groups + 1, np.int64)
    union_codes = np.empty(n_groups * max(n_tokens, 1), np.int64)
    m = 0
    for g in range(n_groups):
        for t in range(n_tokens):
            if has[g, t]:
                rank[g, t] = m - union_ptr[g]
                union_codes[m] = t
                m += 1
        union_ptr[g + 1] = m
    index = np.empty(len(codes), np.int64)
    for i in range(len(ptr) - 1):
        for k in range(ptr[i], ptr[i + 1]):
            index[k] = rank[group_of[i], codes[k]]
    return union_ptr, union_codes[:m], index


@_Kernel
def _greedy_groups(ptr, codes, n_tokens, capacity):  # pragma: no cover - compiled
    """The two passes of `group_candidates` over token bitmaps; returns each item's group id (0..G-1, surviving
    groups in order of creation)."""
    n = len(ptr) - 1
    sizes = ptr[1:] - ptr[:-1]
    has = np.zeros((max(n, 1), max(n_tokens, 1)), np.bool_)   # has[g, t]: token t is in group g's union
    union = np.zeros(max(n, 1), np.int64)
    group_of = np.empty(n, np.int64)
    n_groups = 0
    for i in np.argsort(-sizes, kind="mergesort"):            # largest first, stable like sorted()
        best, best_new = -1, sizes[i]
        for g in range(n_groups):
            new = 0
            for k in range(ptr[i], ptr[i + 1]):
                if not has[g, codes[k]]:
                    new += 1
            if union[g] + new <= capacity and new < best_new:
                best, best_new = g, new
                if new == 0:
                    break
        if best < 0:
            best = n_groups
            n_groups += 1
        for k in range(ptr[i], ptr[i + 1]):
            if not has[best, codes[k]]:
                has[best, codes[k]] = True
                union[best] += 1
        group_of[i] = best
    # Merge pass: smallest union first (sizes as they were before any merge), into the fitting group it overlaps most.
    into = np.arange(n_groups)
    alive = np.ones(n_groups, np.bool_)
    tokens = np.empty(max(n_tokens, 1), np.int64)
    for g in np.argsort(union[:n_groups], kind="mergesort"):
        if not alive[g]:
            continue
        m = 0
        for t in range(n_tokens):
            if has[g, t]:
                tokens[m] = t
                m += 1
        best, best_overlap = -1, -1
        for h in range(n_groups):
            if h == g or not alive[h]:
                continue
            overlap = 0
            for j in range(m):
                if has[h, tokens[j]]:
                    overlap += 1
            if overlap > best_overlap and union[g] + union[h] - overlap <= capacity:
                best, best_overlap = h, overlap
        if best >= 0:
            for j in range(m):
                if not has[best, tokens[j]]:
                    has[best, tokens[j]] = True
                    union[best] += 1
            alive[g] = False
            into[g] = best
    new_id = np.cumsum(alive) - 1                             # surviving groups renumbered 0..G'-1, in order
    for i in range(n):                                        # follow merges to the surviving group
        g = group_of[i]
        while into[g] != g:
            g = into[g]
        group_of[i] = new_id[g]
    return group_of


@_Kernel
def _refine_groups(ptr, codes, group_of, n_groups, n_tokens, capacity):  # pragma: no cover - compiled
    """Local search after the greedy grouping: each item moves to the group where it costs the fewest new tokens,
    when that is fewer than the tokens only it holds in its own group (and the union still fits), until no move
    helps. Returns each item's group id, emptied groups dropped, the rest in order."""
    n = len(ptr) - 1
    count = np.zeros((n_groups, max(n_tokens, 1)), np.int32)  # items of group g holding token t
    union = np.zeros(n_groups, np.int64)
    members = np.zeros(n_groups, np.int64)
    for i in range(n):
        g = group_of[i]
        members[g] += 1
        for k in range(ptr[i], ptr[i + 1]):
            if count[g, codes[k]] == 0:
                union[g] += 1
            count[g, codes[k]] += 1
    for _ in range(20):  # passes at most: every move shrinks the total union, so the search ends anyway
        moved = 0
        for i in range(n):
            g = group_of[i]
            own = 0
            for k in range(ptr[i], ptr[i + 1]):
                if count[g, codes[k]] == 1:
                    own += 1
            best, best_gain = -1, 0
            for h in range(n_groups):
                if h == g or members[h] == 0:
                    continue
                new = 0
                for k in range(ptr[i], ptr[i + 1]):
                    if count[h, codes[k]] == 0:
                        new += 1
                if union[h] + new <= capacity and own - new > best_gain:
                    best, best_gain = h, own - new
            if best >= 0:
                for k in range(ptr[i], ptr[i + 1]):
                    count[g, codes[k]] -= 1
                    if count[g, codes[k]] == 0:
                        union[g] -= 1
                    if count[best, codes[k]] == 0:
                        union[best] += 1
                    count[best, codes[k]] += 1
                members[g] -= 1
                members[best] += 1
                group_of[i] = best
                moved += 1
        if moved == 0:
            break
    new_id = np.cumsum(members > 0) - 1
    for i in range(n):
        group_of[i] = new_id[group_of[i]]
    return group_of


def group_candidates(items: Sequence[np.ndarray], capacity: int, refine: bool = False) -> list[np.ndarray]:
    """Partition candidate indices into groups whose token unions hold at most `capacity` ids, by overlap.

    Largest items first, each joins the fitting group it adds the fewest new tokens to; an item that shares no
    token with any group seeds a new one. Then, smallest first, each group is folded into the group it overlaps most
    while the merged union still fits: related items end up together and the number of encoder passes stays small.
    Compiled over token bitmaps (`_greedy_groups`): O(items x groups x item length), well under a millisecond for
    700 titles; groups come back in order of creation, members sorted. `refine` then moves items between groups
    while that shrinks the unions (`_refine_groups`): 15% fewer union tokens on 700 WikiQA sentences, ~15 ms.
    """
    return np.split(*_split_points(_group_of(items, capacity, refine)[0]))


def _group_of(items: Sequence[np.ndarray], capacity: int, refine: bool = False):
    """Each item's group id, plus what packing reuses: the distinct-token CSR, first positions, code -> id, and
    whether the compiled kernels ran."""
    lens, codes, vocab = _token_codes(items)
    fast = len(codes) >= NUMBA_MIN_TOKENS
    ptr, distinct, first_pos = _distinct_per_item(fast)(lens, codes, len(vocab))
    if len(vocab) <= capacity:
        group_of = np.zeros(len(items), np.int64)
    else:
        group_of = _greedy_groups(fast)(ptr, distinct, len(vocab), capacity)
        if refine:
            group_of = _refine_groups(fast)(ptr, distinct, group_of, int(group_of.max()) + 1, len(vocab), capacity)
    return group_of, ptr, distinct, first_pos, vocab, fast


def compile_kernels() -> None:
    """Compile the grouping kernels now (or load them from numba's disk cache): a server does this before it
    reports ready, so its first long list does not pay the ~1 s that short lists avoid by running in Python."""
    items = [np.arange(start, start + 40) for start in range(1000, 1000 + 2 * NUMBA_MIN_TOKENS, 40)]
    _pack_list(0, np.arange(3), items, 64, 1, 2, refine=True)


def _split_points(group_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Items ordered by group (members ascending inside each), and where each group starts in that order."""
    order = np.argsort(group_of, kind="stable")
    return order, np.flatnonzero(np.diff(group_of[order])) + 1


def pack(query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]], capacity: int,
         cls_id: int, sep_id: int, refine: bool = False) -> list[Group]:
    """Every query's groups, each laid out as `[CLS] q [SEP] u_1 .. u_M` (u: the group's sorted union, Algorithm
    2) with, for each item, the union positions of its distinct tokens (Algorithm 1's pooling mask). Linear in the
    candidates' tokens apart from the grouping itself; no per-group sorting."""
    return [g for q, (qids, items) in enumerate(zip(query_ids, candidates)) if len(items)
            for g in _pack_list(q, qids, items, capacity, cls_id, sep_id, refine)]


def _pack_list(q: int, qids: np.ndarray, items: Sequence[np.ndarray], capacity: int, cls_id: int, sep_id: int,
               refine: bool) -> list[Group]:
    """`pack` for one query's items."""
    groups = []
    group_of, ptr, distinct, first_pos, vocab, fast = _group_of(items, capacity, refine)
    n_groups = int(group_of.max()) + 1
    union_ptr, union_codes, union_index = _union_layout(fast)(ptr, distinct, group_of, n_groups, len(vocab))
    order, cuts = _split_points(group_of)
    # The distinct-token entries of the items in `order`, and each entry's row (item rank in its group).
    counts = (ptr[1:] - ptr[:-1])[order]
    entry = np.repeat(ptr[:-1][order] - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
    rank_in_group = np.arange(len(order)) - np.repeat(np.r_[0, cuts], np.diff(np.r_[0, cuts, len(order)]))
    rows = np.repeat(rank_in_group, counts)
    entry_cuts = np.cumsum(counts)[cuts - 1] if len(cuts) else cuts
    head = np.concatenate([[cls_id], qids, [sep_id]]).astype(np.int64)
    n_query = len(head)
    for g, (members, e, r) in enumerate(zip(np.split(order, cuts), np.split(entry, entry_cuts),
                                            np.split(rows, entry_cuts))):
        union = vocab[union_codes[union_ptr[g]:union_ptr[g + 1]]]
        groups.append(Group(q, members, np.concatenate([head, union]), n_query, r,
                            union_index[e] + n_query, first_pos[e]))
    return groups


@dataclass
class Batch:
    """A padded batch of groups and its pooling as index arrays (no dense [B, N, L] matrix): every pooled union
    token once, as (row, item, column, in-item position); the query part is shared by all items of a row. All of
    it lives in one int64 buffer (numpy here; model.on_device makes it one torch tensor, a single copy to a GPU),
    and every field is a view of it."""
    buffer: Any                   # np.ndarray, or a torch.Tensor on the model's device
    rows: int                     # B
    length: int                   # L
    n_items: int                  # N: most candidates in one group (rows padded to it)
    n_tokens: int                 # T: pooled union tokens in the whole batch
    n_slots: int                  # S: candidates in the whole batch

    def _part(self, k: int):
        b, l, t, s = self.rows, self.length, self.n_tokens, self.n_slots
        ends = np.cumsum((b * l, b * l, b * l, b, t, t, t, t, s, s))
        return self.buffer[(ends[k - 1] if k else 0):ends[k]]

    input_ids = property(lambda self: self._part(0).reshape(self.rows, self.length))
    attention_mask = property(lambda self: self._part(1).reshape(self.rows, self.length))
    token_type_ids = property(lambda self: self._part(2).reshape(self.rows, self.length))  # 0: [CLS] q [SEP]; 1: union
    n_query = property(lambda self: self._part(3))    # [B]: len([CLS] q [SEP]); positions 1 .. n_query-1 pooled
    tok_row = property(lambda self: self._part(4))    # [T]: the row of each pooled union token
    tok_item = property(lambda self: self._part(5))   # [T]: ... the item (0 .. N-1) in its group that pools it
    tok_col = property(lambda self: self._part(6))    # [T]: ... its position in input_ids
    tok_pos = property(lambda self: self._part(7))    # [T]: ... its first position inside the item (Appendix F)
    slot = property(lambda self: self._part(8))       # [S]: row * N + item of every real candidate, group order
    target = property(lambda self: self._part(9))     # [S]: where its score goes in the flat output of the call


def collate(groups: Sequence[Group], offsets: Sequence[int] | None = None) -> Batch:
    """Pad groups into one batch with the pooling as index arrays; `offsets[q]` is where query q's candidates
    start in the flat output (default 0 for every query)."""
    b = len(groups)
    seq = max(len(g.input_ids) for g in groups)
    n_items = max(len(g.items) for g in groups)
    input_ids = np.zeros((b, seq), np.int64)
    attention = np.zeros((b, seq), np.int64)
    types = np.zeros((b, seq), np.int64)
    for i, g in enumerate(groups):
        n = len(g.input_ids)
        input_ids[i, :n] = g.input_ids
        attention[i, :n] = 1
        types[i, g.n_query:n] = 1
    starts = np.asarray(offsets, np.int64)[[g.query for g in groups]] if offsets is not None else np.zeros(b, np.int64)
    parts = [input_ids.ravel(), attention.ravel(), types.ravel(), np.array([g.n_query for g in groups], np.int64),
             np.repeat(np.arange(b), [len(g.item_rows) for g in groups]),
             *(np.concatenate([getattr(g, f) for g in groups]).astype(np.int64, copy=False)
               for f in ("item_rows", "item_cols", "item_token_pos")),
             np.concatenate([i * n_items + np.arange(len(g.items)) for i, g in enumerate(groups)]),
             np.concatenate([s + g.items for s, g in zip(starts, groups)]).astype(np.int64, copy=False)]
    return Batch(np.concatenate(parts), b, seq, n_items, len(parts[4]), len(parts[8]))


def batches(groups: Sequence[Group], max_tokens: int, max_groups: int = 64,
            per_query: bool = False) -> list[list[Group]]:
    """Length-sorted batches holding at most `max_tokens` padded tokens (B x L) and `max_groups` groups.
    `per_query`: no batch mixes queries. Dynamic int8 scales a batch's activations by its largest value, so a
    query's scores would otherwise move (about 0.1 of a logit) with whatever was batched beside it."""
    order = sorted(range(len(groups)), key=lambda i: (groups[i].query if per_query else 0, len(groups[i].input_ids)))
    out, current, longest = [], [], 0
    for i in order:
        length = len(groups[i].input_ids)
        if current and (max(longest, length) * (len(current) + 1) > max_tokens or len(current) >= max_groups
                        or (per_query and groups[i].query != current[0].query)):
            out.append(current)
            current, longest = [], 0
        current.append(groups[i])
        longest = max(longest, length)
    if current:
        out.append(current)
    return out
