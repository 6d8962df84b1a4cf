"""The CROSS-JEM network: a BERT-family encoder, selective mean pooling per candidate, one shared linear head."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from .packing import Batch


def sinusoidal_table(n_positions: int, dim: int) -> torch.Tensor:
    """Vaswani et al. encodings: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


def on_device(batch: Batch, device: str) -> Batch:
    """The batch with its buffer as one torch tensor on `device` (one copy)."""
    return dataclasses.replace(batch, buffer=torch.from_numpy(batch.buffer).to(device, non_blocking=True))


class CrossJEMNetwork(nn.Module):
    def __init__(self, encoder: nn.Module, position_encoding: bool = False, max_item_tokens: int = 64):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        self.position_encoding = position_encoding
        # Appendix F: sinusoidal encodings of each token's position inside its item, applied after the encoder.
        self.register_buffer("pe", sinusoidal_table(max_item_tokens, hidden), persistent=False)
        self.pe_scale = nn.Parameter(torch.tensor(0.1)) if position_encoding else None

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits [B, N] for every candidate slot of every group in the batch, from one encoder pass. Pooling is
        a gather and a scatter-add over the batch's index arrays, in fp32 whatever the autocast."""
        hidden = self.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              token_type_ids=batch.token_type_ids).last_hidden_state.float()
        rows, length, _ = hidden.shape
        positions = torch.arange(length, device=hidden.device)
        # Section 3.1 pools T_q, [SEP] and the item's tokens; [CLS] (position 0) is not among them.
        query_part = ((positions >= 1) & (positions < batch.n_query[:, None])).float()          # [B, L]
        query_sum = (hidden * query_part[..., None]).sum(1)  # [B, d]; elementwise, so autocast keeps it fp32
        tokens = hidden[batch.tok_row, batch.tok_col]                                             # [T, d]
        if self.position_encoding:
            # Added literally (h_t + PE(p_t), then the mean), the encodings contribute the mean of PE over the
            # positions 0..n-1 whatever token sits where: mean pooling is linear and the union state h_t is shared by
            # all items, so order stays invisible. Modulating the token state by its position instead,
            # h_t + a * PE(p_t) * h_t, makes the pooled vector depend on which token is at which position.
            tokens = tokens + self.pe_scale * self.pe[batch.tok_pos] * tokens
        slots = batch.tok_row * batch.n_items + batch.tok_item
        sums = query_sum.repeat_interleave(batch.n_items, 0).index_add(0, slots, tokens)        # [B * N, d]
        counts = (batch.n_query - 1).repeat_interleave(batch.n_items).float().index_add(
            0, slots, torch.ones_like(slots, dtype=torch.float32))
        with torch.autocast(hidden.device.type, enabled=False):  # bf16 logits would tie close candidates
            return self.head(sums / counts[:, None]).view(rows, batch.n_items)
