"""LangChain: `CrossJEMRerank`, a document compressor (use it in a `ContextualCompressionRetriever` or after any
retriever in a chain). Needs `pip install 'rerank-pipeline[langchain]'`."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, PrivateAttr

from .scoring import TextScorer


class CrossJEMRerank(BaseDocumentCompressor):
    """Reorders documents by a reranker of rerank_pipeline (or a remote /v1/rerank URL) and keeps the best `top_n`,
    each with its score in `metadata["relevance_score"]`."""

    reranker: Any
    top_n: Optional[int] = 3
    model: Optional[str] = None
    model_config = ConfigDict(arbitrary_types_allowed=True)
    _scorer: TextScorer = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._scorer = TextScorer(self.reranker, self.model)

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        ranked = self._scorer.top(query, [d.page_content for d in documents], self.top_n)
        return [Document(page_content=documents[i].page_content, id=documents[i].id,
                         metadata={**documents[i].metadata, "relevance_score": score}) for i, score in ranked]
