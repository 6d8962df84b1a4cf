"""The MICE network (Vast et al. 2026): a trained cross-encoder cut into a document-independent bottom and a few
query-side interaction layers.

Layers 0..m-1 (the encoder kept as it is) see the query and the document apart, so a document's layer-m states
can be computed once, at index time. Layers m..d-1 are rebuilt as query self-attention, cross-attention from the
query tokens to the fixed document states, and the feed-forward block; document states are never updated there.
Layers from d on are dropped. The score is the teacher's head (linear, or BERT's pooler and classifier) on the
query-side [CLS].
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def self_attention_mask(query_mask: torch.Tensor) -> torch.Tensor:
    """[B, Lq, Lq] may-attend mask of the query side: real keys only, and no query token attends to [CLS]
    (position 0), which stays a pure reader of the query (the paper's ablations: this mask mattered)."""
    allowed = query_mask[:, None, :].expand(-1, query_mask.shape[1], -1).clone()
    allowed[:, 1:, 0] = False
    return allowed


def cross_attention_mask(query_mask: torch.Tensor, doc_mask: torch.Tensor) -> torch.Tensor:
    """[B, Lq, Ld] may-attend mask from query tokens to document states: real document tokens only, and [CLS]
    never reads the document directly (it learns about it through the query tokens that did)."""
    allowed = doc_mask[:, None, :] & query_mask[:, :, None]
    allowed[:, 0, :] = False
    return allowed


class Attention(nn.Module):
    """BERT's attention block (projections, output dense, residual LayerNorm) with explicit keys and a mask, so
    the same weights serve self-attention and, copied, cross-attention."""

    def __init__(self, bert_attention: nn.Module, heads: int):
        super().__init__()
        own = bert_attention.self
        self.query, self.key, self.value = copy.deepcopy(own.query), copy.deepcopy(own.key), copy.deepcopy(own.value)
        self.dense = copy.deepcopy(bert_attention.output.dense)
        self.norm = copy.deepcopy(bert_attention.output.LayerNorm)
        self.dropout = nn.Dropout(bert_attention.output.dropout.p)
        self.heads = heads
        self.absorb: bool | None = None  # None: whichever path costs fewer FLOPs for the shapes at hand

    def forward(self, x: torch.Tensor, context: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, lx, h = x.shape
        reads = allowed.any(-1)  # rows with no key (e.g. [CLS] in cross-attention) pass through unchanged
        mask = (allowed | ~reads[..., None])[:, None]
        q = self.query(x).view(b, lx, self.heads, h // self.heads).transpose(1, 2)
        cheaper = lx * (1 / context.shape[1] + (self.heads - 1) / h) < 1  # than projecting the context
        if self.absorb if self.absorb is not None else cheaper:
            out = self._absorbed(q, context, mask)
        else:
            split = lambda t: t.view(b, t.shape[1], self.heads, h // self.heads).transpose(1, 2)  # noqa: E731
            out = F.scaled_dot_product_attention(q, split(self.key(context)), split(self.value(context)),
                                                 attn_mask=mask)
        out = self.norm(x + self.dropout(self.dense(out.transpose(1, 2).reshape(b, lx, h))))
        return torch.where(reads[..., None], out, x)

    def _absorbed(self, q: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The same attention without projecting the (many, fixed) context tokens: q . (W_k c + b_k) =
        (W_k^T q) . c + q . b_k, where q . b_k is the same for every key and cancels in the softmax; and
        sum_j a_j (W_v c_j + b_v) = W_v (sum_j a_j c_j) + b_v. Cheaper when heads x query tokens < context tokens,
        as with short queries reading long documents."""
        heads, dh = q.shape[1], q.shape[-1]
        w_k = self.key.weight.view(heads, dh, -1)
        w_v = self.value.weight.view(heads, dh, -1)
        logits = torch.einsum("bnlh,bth->bnlt", torch.einsum("bnld,ndh->bnlh", q, w_k), context) / dh ** 0.5
        weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
        mixed = torch.einsum("bnlt,bth->bnlh", weights, context)
        return torch.einsum("bnlh,ndh->bnld", mixed, w_v) + self.value.bias.view(heads, 1, dh)


class InteractionLayer(nn.Module):
    """One rebuilt top layer: query self-attention, cross-attention to the document, feed-forward. Self-attention
    and FFN are the cross-encoder layer's weights; cross-attention starts as a copy of its self-attention."""

    def __init__(self, bert_layer: nn.Module, heads: int):
        super().__init__()
        self.self_attention = Attention(bert_layer.attention, heads)
        self.cross_attention = Attention(bert_layer.attention, heads)
        self.intermediate = copy.deepcopy(bert_layer.intermediate)
        self.output = copy.deepcopy(bert_layer.output)

    def forward(self, x, self_allowed, doc, cross_allowed, owners: torch.Tensor | None = None):
        """`owners`: x holds one row per query and the pairs' rows are x[owners]; the first layer's self-attention
        sees only the query, so it runs once per query instead of once per pair."""
        x = self.self_attention(x, x, self_allowed)
        if owners is not None:
            x = x[owners]
        x = self.cross_attention(x, doc, cross_allowed)
        return self.output(self.intermediate(x), x)


class PooledHead(nn.Module):
    """BERT's sequence-classification head, the one a Hugging Face cross-encoder such as the MS MARCO teacher
    scores with: the pooler (dense, tanh) on [CLS], then the classifier."""

    def __init__(self, hidden: int):
        super().__init__()
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, 1)

    def forward(self, cls_state: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.pooler(cls_state)))


class MiceNetwork(nn.Module):
    def __init__(self, encoder: nn.Module, merge_layer: int, depth: int, head: nn.Module | None = None):
        super().__init__()
        layers = encoder.encoder.layer
        if not (0 <= merge_layer and merge_layer + 2 <= depth <= len(layers)):
            raise ValueError(f"MICE needs 0 <= merge_layer (m={merge_layer}) and m + 2 <= depth (d={depth}) <= "
                             f"{len(layers)} (the encoder's layers): with one interaction layer [CLS] never sees the "
                             "document")
        heads = encoder.config.num_attention_heads
        self.top = nn.ModuleList(InteractionLayer(layers[i], heads) for i in range(merge_layer, depth))
        encoder.encoder.layer = nn.ModuleList(layers[:merge_layer])  # the bottom: embeddings + layers 0..m-1
        self.encoder = encoder
        self.head = head if head is not None else nn.Linear(encoder.config.hidden_size, 1)

    def bottom(self, input_ids, attention_mask, token_type_ids, position_ids) -> torch.Tensor:
        """Layer-m states of one side (query or document) on its own."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids).last_hidden_state

    def interact(self, query_states, query_mask, owners, doc_states, doc_mask) -> torch.Tensor:
        """Logits [B] of B (query, document) pairs: query i's layer-m states are query_states[i], pair p's query
        is owners[p], its document's layer-m states doc_states[p]."""
        self_allowed = self_attention_mask(query_mask)
        cross_allowed = cross_attention_mask(query_mask[owners], doc_mask)
        x = self.top[0](query_states, self_allowed, doc_states, cross_allowed, owners)
        self_allowed = self_allowed[owners]
        for layer in self.top[1:]:
            x = layer(x, self_allowed, doc_states, cross_allowed)
        return self.head(x[:, 0]).squeeze(-1)


@contextmanager
def plain_attention(network: MiceNetwork):
    """Every attention on its projecting path while inside: an exported graph cannot pick a path by shape (both
    compute the same function)."""
    blocks = [a for layer in network.top for a in (layer.self_attention, layer.cross_attention)]
    saved = [a.absorb for a in blocks]
    for a in blocks:
        a.absorb = False
    try:
        yield
    finally:
        for a, value in zip(blocks, saved):
            a.absorb = value


class Interaction(nn.Module):
    """`MiceNetwork.interact` as a module of tensors, for export."""

    def __init__(self, network: MiceNetwork):
        super().__init__()
        self.network = network

    def forward(self, query_states, query_mask, owners, doc_states, doc_mask) -> torch.Tensor:
        with plain_attention(self.network):
            return self.network.interact(query_states, query_mask, owners, doc_states, doc_mask)
