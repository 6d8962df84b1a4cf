"""Reranking stages for application frameworks, one small module each, imported only when used:

- `rerank_pipeline.integrations.langchain`: `CrossJEMRerank`, a LangChain `BaseDocumentCompressor`;
- `rerank_pipeline.integrations.llamaindex`: `CrossJEMRerank`, a LlamaIndex `BaseNodePostprocessor`;
- `rerank_pipeline.integrations.haystack`: `CrossJEMRanker`, a Haystack component.

Each wraps any loaded reranker or reranking stage of this library (CROSS-JEM, pointwise, MICE, any Hugging Face
cross-encoder, a Combine stage), or a remote `rerank serve` (any Cohere-style `/v1/rerank` URL).
"""
