"""The `rerank` command line: thin wrappers over rerank_pipeline calls."""
