"""MICE, minimal-interaction cross-encoders (Vast et al. 2026): a pointwise teacher cut so that documents are
encoded alone up to layer m (stored at index time) and the query reads them in a few top layers."""
from __future__ import annotations

import json
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ...types import split_by
from ...encoders import tensor_digest
from ...pretrained import hf_directory, packaged_name
from ..base import Reranker
from ..hf import HFCrossEncoder
from ..pointwise import PointwiseCrossEncoder
from ..scorer import budget_batches, length_batches, trimmed
from .model import Interaction, MiceNetwork, PooledHead

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "mice-minilm-l6"


def bert_parts(model: torch.nn.Module, path: Path) -> tuple[torch.nn.Module, PooledHead]:
    """A Hugging Face BERT sequence classifier's encoder (its pooler removed) and its pooler + classifier as the
    head MICE scores with."""
    base, classifier = getattr(model, "bert", None), getattr(model, "classifier", None)
    if base is None or getattr(base, "pooler", None) is None or getattr(classifier, "out_features", None) != 1:
        raise ValueError(f"{path / 'config.json'}: field 'architectures': MICE is cut from a BERT cross-encoder with a "
                         f"pooler and one logit, not {type(model).__name__}")
    head = PooledHead(base.config.hidden_size)
    head.pooler.load_state_dict(base.pooler.dense.state_dict())
    head.classifier.load_state_dict(classifier.state_dict())
    base.pooler = None
    return base, head


class MICE(Reranker):
    kind = "mice"
    defaults: dict[str, Any] = {
        "max_query_tokens": 32,
        "max_item_tokens": 64,     # stored per document at index time: 768 bytes a token in fp16
        "merge_layer": 2,          # m: layers 0..m-1 see query and document apart (benchmarks/results/mice_sweep.md)
        "depth": 5,                # d: layers m..d-1 interact, layers from d on are dropped
        "max_batch_tokens": 16384,
    }
    _warned = False  # the on-the-fly warning is given once per model
    chunk_items = 256  # documents whose states are held at once on the fly: 256 x 129 tokens x 384 floats = 50 MiB

    def onnx_parts(self):
        """Two graphs: the bottom layers (query and document sides, with their own positions) and the interaction
        layers over layer-m states."""
        from ...graphs.export import TEXT_INPUTS, OnnxPart, encoder_part

        self.states_fingerprint  # noqa: B018 - computed from the torch bottom before ONNX replaces it
        hidden = self.network.encoder.config.hidden_size
        query_mask, doc_mask = torch.ones(2, 5, dtype=torch.bool), torch.ones(3, 7, dtype=torch.bool)
        query_mask[1, 4:] = False
        doc_mask[2, 5:] = False
        example = {"query_states": torch.randn(2, 5, hidden), "query_mask": query_mask,
                   "owners": torch.tensor([0, 1, 1]), "doc_states": torch.randn(3, 7, hidden), "doc_mask": doc_mask}
        axes = {"query_states": {0: "queries", 1: "query_length"}, "query_mask": {0: "queries", 1: "query_length"},
                "owners": {0: "pairs"}, "doc_states": {0: "pairs", 1: "doc_length"},
                "doc_mask": {0: "pairs", 1: "doc_length"}}
        return [encoder_part(self.network, "encoder", TEXT_INPUTS + ("position_ids",)),
                OnnxPart(self.network, "interact", Interaction(self.network), tuple(example), None, example, axes)]

    @classmethod
    def build_network(cls, encoder: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        head = PooledHead(encoder.config.hidden_size) if config.get("head") == "pooled" else None
        return MiceNetwork(encoder, config["merge_layer"], config["depth"], head)

    @classmethod
    def from_teacher(cls, teacher: str | Path, device: str | None = None, **config) -> "MICE":
        """A MICE model cut from a trained cross-encoder (its layers, head and tokenizer), to be trained by
        distillation from that same teacher: a pointwise model directory of this project, a Hugging Face BERT
        cross-encoder directory, or a packaged one ('ms-marco-minilm-l12', its int8 weights dequantized)."""
        path = hf_directory(str(teacher)) if packaged_name(str(teacher)) else Path(teacher)
        if HFCrossEncoder.recognizes(path):
            source = HFCrossEncoder.load(path, device="cpu")
            encoder, head = bert_parts(source.network.model, path)
            config = {**config, "head": "pooled"}
        else:
            source = PointwiseCrossEncoder.load(path, device="cpu")  # errors name the file and field
            encoder, head = source.network.encoder, source.network.head
        config = {**cls.defaults, "max_query_tokens": source.config["max_query_tokens"], **config}
        network = MiceNetwork(encoder, config["merge_layer"], config["depth"], head=head)
        return cls(network, source.tokenizer, {**config, "teacher": str(teacher)}, device)

    @classmethod
    def default(cls) -> "MICE":
        if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
            raise FileNotFoundError("no MICE model ships with this version (none has passed the quality gate); "
                                    "train one with `rerank train --family mice --teacher DIR` and pass its directory")
        return cls.load(DEFAULT_MODEL_DIR)

    # ---- the two sides -----------------------------------------------------------------------------------------
    @property
    def doc_position_offset(self) -> int:
        """Documents are encoded alone, so their positions cannot follow their query's; they start where a document
        follows the longest query in the teacher's `[CLS] q [SEP] d [SEP]`."""
        return self.config["max_query_tokens"] + 2

    def query_states(self, query_ids: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-m states [Q, Lq, H] of `[CLS] q [SEP]` and their mask, one row per query (not per pair)."""
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        width = max(len(q) for q in query_ids) + 2
        ids = np.zeros((len(query_ids), width), np.int64)
        mask = np.zeros((len(query_ids), width), np.int64)
        for row, q in enumerate(query_ids):
            ids[row, : len(q) + 2] = np.concatenate([[cls_id], q, [sep_id]])
            mask[row, : len(q) + 2] = 1
        ids_t, mask_t = torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)
        positions = torch.arange(width, device=self.device).expand(len(query_ids), -1)
        states = self.network.bottom(ids_t, mask_t, torch.zeros_like(ids_t), positions)
        return states, mask_t.bool()

    def document_states(self, items: Sequence[np.ndarray], max_batch_tokens: int | None = None) -> list[torch.Tensor]:
        """Layer-m states [len + 1, H] of each `d [SEP]` alone: what an index stores. Length-sorted batches."""
        sep_id = self.tokenizer.sep_token_id
        seqs = [np.append(np.asarray(t, np.int64), sep_id) for t in items]
        order = np.argsort([len(s) for s in seqs], kind="stable")
        budget = max_batch_tokens or self.batch_tokens
        out: list[torch.Tensor | None] = [None] * len(seqs)
        for idx in trimmed(budget_batches([len(seqs[i]) for i in order], budget), self.device):
            rows = order[idx]
            width = len(seqs[rows[-1]])
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for r, i in enumerate(rows):
                ids[r, : len(seqs[i])] = seqs[i]
                mask[r, : len(seqs[i])] = 1
            ids_t, mask_t = torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)
            positions = self.doc_position_offset + torch.arange(width, device=self.device).expand(len(rows), -1)
            states = self.network.bottom(ids_t, mask_t, torch.ones_like(ids_t), positions)
            for r, i in enumerate(rows):
                out[i] = states[r, : len(seqs[i])]
        return out  # type: ignore[return-value]

    def interact(self, query_states: torch.Tensor, query_mask: torch.Tensor,
                 docs: Sequence[Sequence[torch.Tensor]], max_batch_tokens: int | None = None) -> list[torch.Tensor]:
        """Logits per query for its documents' layer-m states; pairs batched by length under the token budget."""
        pairs = [(q, j) for q, ds in enumerate(docs) for j in range(len(ds))]
        q_len = query_mask.sum(-1).cpu().numpy()
        lengths = np.array([q_len[q] + len(docs[q][j]) for q, j in pairs], dtype=np.int64)
        owners = np.array([q for q, _ in pairs]) if self.per_query_batches else None
        values, positions = [], []
        for rows in trimmed(length_batches(lengths, max_batch_tokens or self.batch_tokens, owners), self.device):
            owners = torch.as_tensor([pairs[p][0] for p in rows], device=self.device)
            doc = pad_sequence([docs[pairs[p][0]][pairs[p][1]] for p in rows], batch_first=True)
            doc_mask = pad_sequence([torch.ones(len(docs[pairs[p][0]][pairs[p][1]]), dtype=torch.bool,
                                                device=self.device) for p in rows], batch_first=True)
            batch_queries, owners = torch.unique(owners, return_inverse=True)  # only this batch's queries
            values.append(self.network.interact(query_states[batch_queries], query_mask[batch_queries], owners,
                                                doc.to(query_states.dtype), doc_mask))
            positions.append(torch.from_numpy(rows).to(self.device))
        return self.per_query(values, positions, [len(d) for d in docs])

    def logits(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]],
               max_batch_tokens: int | None = None) -> list[torch.Tensor]:
        """Both sides computed here (training, and reranking without stored states); documents `chunk_items` of a
        list at a time, so their layer-m states are held for one chunk, not the whole list."""
        q_states, q_mask = self.query_states(query_ids)
        per_query: list[list[torch.Tensor]] = [[] for _ in candidates]
        for _, chunk in self.list_chunks(candidates):
            states = split_by(self.document_states([t for c in chunk for t in c], max_batch_tokens), map(len, chunk))
            for scores, part in zip(per_query, self.interact(q_states, q_mask, states, max_batch_tokens)):
                scores.append(part)
            del states  # before the next chunk's are computed: one chunk's states at a time
        return [torch.cat(s) if s else torch.zeros(0, device=self.device) for s in per_query]

    # ---- stored document states --------------------------------------------------------------------------------
    @cached_property
    def states_fingerprint(self) -> str:
        """Identifies the document states this model computes: its bottom weights and the document layout."""
        layout = json.dumps([self.config["max_item_tokens"], self.doc_position_offset, self.tokenizer.sep_token_id])
        return tensor_digest(self.network.encoder.state_dict(), layout)

    def score_docs(self, query_texts: Sequence[str], docids: Sequence[Sequence[str]], docs) -> list[np.ndarray]:
        """With the index's stored states for this model, only the query side and the interaction layers run."""
        stored = docs.document_states()
        if stored is None or stored.fingerprint != self.states_fingerprint:
            if not self._warned:
                why = "the index has none" if stored is None else "the index's states come from another MICE model"
                warnings.warn(f"MICE computes document states on the fly ({why}; store them with "
                              "`rerank index ... --mice MODEL_DIR`)", stacklevel=2)
                self._warned = True
            return super().score_docs(query_texts, docids, docs)
        rows = docs.rows([d for ds in docids for d in ds])
        flat = [torch.from_numpy(s).to(self.device) for s in stored.states(rows)]
        per_query = split_by(flat, map(len, docids))
        with torch.inference_mode(), self.autocast():
            q_states, q_mask = self.query_states(self.tokenize_queries(query_texts))
            scores = self.interact(q_states, q_mask, per_query)
        return [s.float().cpu().numpy() for s in scores]
