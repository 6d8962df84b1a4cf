"""Document sources held in memory: texts by doc id, tokenized when a reranker asks (the index's docstore,
index/docstore.py, is the other kind, with ids tokenized at build time)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .encoders import tokenize_ids


class TextDocs:
    """In-memory doc source (docid -> text) for reranking runs that did not come from an index."""

    def __init__(self, texts: dict[str, str]):
        self._texts = texts

    def __contains__(self, docid: object) -> bool:
        return docid in self._texts

    def texts(self, docids: Sequence[str]) -> list[str]:
        return [self._texts[d] for d in docids]

    def token_ids(self, docids: Sequence[str], tokenizer) -> list[np.ndarray]:
        return tokenize_ids(tokenizer, self.texts(docids))

    def document_states(self) -> None:
        """Nothing is precomputed for texts held in memory (MICE computes their states on the fly)."""
        return None
