"""BM25 first stage. The default backend is bm25s (eager sparse scoring, numba when available); Lucene through
pyserini (retrievers/lucene.py, the [lucene] extra) implements the same interface (build/load/search over internal
row ids)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ..pipeline import Retriever
from ..types import Queries, Run


class BM25Backend(Protocol):
    name: str
    files: tuple[str, ...]    # what a complete build leaves in its directory (Index.open checks them)
    settings: dict            # what its build uses, recorded in the index manifest

    @classmethod
    def build(cls, texts: Sequence[str], directory: Path, **params) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> "BM25Backend": ...

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """[queries x k] internal row ids (-1 where fewer than k docs match) and scores."""
        ...


# numba compiles bm25s's top-k on its first call in every process (~5 s on 2 cores; bm25s does not cache it on disk),
# which only pays back on large batches of queries: below this many, numpy's selection answers at once.
NUMBA_MIN_QUERIES = 256


def _numba_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


class Bm25sBackend:
    """bm25s with PyStemmer English stemming and English stopwords; Lucene's BM25 variant, k1=1.5, b=0.75 by default
    (the settings bm25s reports its BEIR figures with)."""

    name = "bm25s"
    files = ("params.index.json",)  # what a complete build leaves in its directory
    settings = {"k1": 1.5, "b": 0.75, "method": "lucene", "stemmer": "english", "stopwords": "en"}  # build defaults

    def __init__(self, model, stemmer_language: str, stopwords: str):
        import Stemmer

        self.model = model
        self.stemmer = Stemmer.Stemmer(stemmer_language)
        self.stopwords = stopwords

    @classmethod
    def build(cls, texts: Sequence[str], directory: Path, *, k1: float = 1.5, b: float = 0.75, method: str = "lucene",
              stemmer_language: str = "english", stopwords: str = "en", show_progress: bool = True) -> None:
        import bm25s
        import Stemmer

        tokens = bm25s.tokenize(list(texts), stopwords=stopwords, stemmer=Stemmer.Stemmer(stemmer_language),
                                show_progress=show_progress)
        model = bm25s.BM25(k1=k1, b=b, method=method)
        model.index(tokens, show_progress=show_progress)
        directory.mkdir(parents=True, exist_ok=True)
        model.save(directory, show_progress=False)
        (directory / "analyzer.json").write_text(json.dumps({"stemmer": stemmer_language, "stopwords": stopwords}))

    @classmethod
    def load(cls, directory: Path) -> "Bm25sBackend":
        import bm25s

        analyzer = json.loads((directory / "analyzer.json").read_text())
        model = bm25s.BM25.load(directory, mmap=False, show_progress=False)
        return cls(model, analyzer["stemmer"], analyzer["stopwords"])

    def tokenize(self, queries: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(list(queries), stopwords=self.stopwords, stemmer=self.stemmer, return_ids=False,
                              show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = self.tokenize(queries)
        vocab = self.model.vocab_dict
        k = min(k, int(self.model.scores["num_docs"]))
        ids = np.full((len(tokens), k), -1, dtype=np.int64)
        scores = np.zeros((len(tokens), k), dtype=np.float32)
        # Queries with no indexed term match nothing; bm25s would score them over an empty term list.
        known = [i for i, t in enumerate(tokens) if any(w in vocab for w in t)]
        if known:
            backend = "numba" if len(known) >= NUMBA_MIN_QUERIES and _numba_available() else "numpy"
            found, found_scores = self.model.retrieve([tokens[i] for i in known], k=k, show_progress=False,
                                                      backend_selection=backend, n_threads=0)
            ids[known], scores[known] = found, found_scores
        ids[scores <= 0] = -1  # docs sharing no query term score 0: not retrieved
        return ids, scores

    def score_rows(self, queries: Sequence[str], rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Exact BM25 scores of given documents (internal row ids) per query: a reranking feature."""
        out = []
        for tokens, r in zip(self.tokenize(queries), rows):
            ids = self.model.get_tokens_ids(tokens)
            out.append(self.model.get_scores_from_ids(ids)[r].astype(np.float64) if ids else np.zeros(len(r)))
        return out


def bm25_backend(name: str) -> type:
    """The backend class named in an index manifest (Lucene is imported only when used)."""
    if name == "lucene":
        from .lucene import LuceneBackend

        return LuceneBackend
    if name != "bm25s":
        raise ValueError(f"unknown BM25 backend '{name}' (use bm25s or lucene)")
    return Bm25sBackend


class BM25(Retriever):
    def __init__(self, index, k: int = 1000):
        self.index, self.k = index, k
        self.name = "bm25"

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids = list(queries)
        ids, scores = self.index.bm25_backend().search([queries[q] for q in qids], self.k)
        store = self.index.docstore
        return Run.from_arrays(qids, ids, scores, store.docids, store.tie_rank, store)
