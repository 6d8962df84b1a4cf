"""LangChain: `CrossJEMRerank`, a document compressor (use it in a `ContextualCompressionRetriever` or after any
retriever in a chain). Needs `pip install 'rerank-pipeline[langchain]'`."""
from __future__ import annotations

from typing import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document

from .scoring import StageSettings


class CrossJEMRerank(StageSettings, BaseDocumentCompressor):
    """Reorders documents by a reranker of rerank_pipeline (or a remote /v1/rerank URL) and keeps the best `top_n`,
    each with its score in `metadata["relevance_score"]`."""

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        ranked = self._scorer.top(query, [d.page_content for d in documents], self.top_n)
        return [Document(page_content=documents[i].page_content, id=documents[i].id,
                         metadata={**documents[i].metadata, "relevance_score": score}) for i, score in ranked]
