"""Zero-shot dual-encoder reranking: cosine between the query's and each candidate's sentence embedding.

The baseline every trained reranker must beat on the same candidates (all-MiniLM-L6-v2 unless told otherwise).
Given the index the candidates come from, it reads their stored embeddings instead of encoding them again.
"""
from __future__ import annotations

import numpy as np

from ..pipeline import Stage
from ..retrievers.dense import encode
from ..types import Queries, Run, split_by


class BiEncoderReranker(Stage):
    def __init__(self, encoder: str | None = None, batch_size: int = 128, index=None):
        self.index = index if index is not None and "dense" in index.stages else None  # stored embeddings
        if self.index is not None:
            encoder = self.index.manifest["dense"]["encoder"]
        self.encoder, self.batch_size = encoder, batch_size
        self.name = "MiniLM cosine" if encoder in (None, "sentence-transformers/all-MiniLM-L6-v2") else f"cosine({encoder})"

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        if run is None or run.docs is None:
            raise ValueError(f"{self.name} needs candidates with their texts (retriever >> reranker)")
        qids = [q for q in run if run[q]]
        q_emb = encode([queries[q] for q in qids], self.encoder, self.batch_size)
        docids = [[h.docid for h in run[q]] for q in qids]
        flat = [d for ds in docids for d in ds]
        if self.index is not None:
            d_emb = np.load(self.index.path / "dense" / "embeddings.npy", mmap_mode="r")[
                self.index.docstore.rows(flat)]
        else:
            d_emb = encode(run.docs.texts(flat), self.encoder, self.batch_size)
        owner = np.repeat(np.arange(len(qids)), [len(ds) for ds in docids])
        scores = np.einsum("nd,nd->n", d_emb, q_emb[owner])
        return Run.from_scores(qids, docids, split_by(scores, map(len, docids)), run.docs)
