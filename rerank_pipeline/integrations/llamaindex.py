"""LlamaIndex: `CrossJEMRerank`, a node postprocessor (pass it in `node_postprocessors=[...]` of a query engine or
retriever). Needs `pip install 'rerank-pipeline[llamaindex]'`."""
from __future__ import annotations

from typing import List, Optional

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from .scoring import StageSettings


class CrossJEMRerank(StageSettings, BaseNodePostprocessor):
    """Rescores the retrieved nodes with a reranker of rerank_pipeline (or a remote /v1/rerank URL) and keeps the
    best `top_n`, their scores replaced by the reranker's."""

    @classmethod
    def class_name(cls) -> str:
        return "CrossJEMRerank"

    def _postprocess_nodes(self, nodes: List[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("CrossJEMRerank needs the query (a query bundle)")
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        return [NodeWithScore(node=nodes[i].node, score=score)
                for i, score in self._scorer.top(query_bundle.query_str, texts, self.top_n)]
