"""SQLite docstore: each document's text and its word-piece ids for the reranker's tokenizer (tokenized once)."""
from __future__ import annotations

import sqlite3
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from ..encoders import tokenize_ids, tokenizer_fingerprint
from .states import DocumentStates

SCHEMA = """
CREATE TABLE docs (idx INTEGER PRIMARY KEY, docid TEXT NOT NULL UNIQUE, text TEXT NOT NULL, tokens BLOB);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_SQL_CHUNK = 900  # stay under SQLite's host-parameter limit


def write_docstore(path: Path, docids: Sequence[str], texts: Sequence[str], tokenizer, batch_size: int = 2048,
                   progress=None) -> np.ndarray:
    """Write all documents in one transaction; returns each document's stored word pieces (cut at
    MAX_DOC_TOKENS). `progress(n)` is called as batches are tokenized."""
    con = sqlite3.connect(path)
    lengths = np.zeros(len(docids), np.int64)
    try:
        con.executescript(SCHEMA)
        con.execute("INSERT INTO meta VALUES ('tokenizer', ?)", (tokenizer_fingerprint(tokenizer),))
        for start in range(0, len(docids), batch_size):
            chunk = list(texts[start:start + batch_size])
            ids = tokenize_ids(tokenizer, chunk)
            lengths[start:start + len(chunk)] = [len(t) for t in ids]
            con.executemany(
                "INSERT INTO docs VALUES (?, ?, ?, ?)",
                ((start + i, docids[start + i], chunk[i], t.astype(np.int32).tobytes()) for i, t in enumerate(ids)),
            )
            if progress:
                progress(len(chunk))
        con.commit()
    finally:
        con.close()
    return lengths


class DocStore:
    """Read side. Internal integer ids (row order) map to string doc ids here and never leak past the retrievers."""

    def __init__(self, path: Path):
        self.path = Path(path)
        # Read-only, shareable across threads (the server reads from worker threads).
        self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        self.docids: list[str] = [r[0] for r in self._con.execute("SELECT docid FROM docs ORDER BY idx")]
        self._idx = {d: i for i, d in enumerate(self.docids)}
        row = self._con.execute("SELECT value FROM meta WHERE key='tokenizer'").fetchone()
        self.tokenizer_fingerprint = row[0] if row else ""

    def __len__(self) -> int:
        return len(self.docids)

    @cached_property
    def tie_rank(self) -> np.ndarray:
        """Per internal id, its rank in descending doc-id order: trec_eval's tie-break among equal scores."""
        order = sorted(range(len(self.docids)), key=self.docids.__getitem__, reverse=True)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank

    def __contains__(self, docid: object) -> bool:
        return docid in self._idx

    def rows(self, docids: Sequence[str]) -> np.ndarray:
        """Internal ids (row numbers, as in the dense embeddings) of doc ids."""
        return np.fromiter((self._idx[d] for d in docids), np.int64, len(docids))

    def _fetch(self, column: str, docids: Sequence[str]) -> list:
        idxs = [self._idx[d] for d in docids]
        found: dict[int, object] = {}
        for start in range(0, len(idxs), _SQL_CHUNK):
            part = idxs[start:start + _SQL_CHUNK]
            q = f"SELECT idx, {column} FROM docs WHERE idx IN ({','.join('?' * len(part))})"
            found.update(self._con.execute(q, part).fetchall())
        return [found[i] for i in idxs]

    def texts(self, docids: Sequence[str]) -> list[str]:
        return self._fetch("text", docids)

    def sample_queries(self, n: int = 4, words: int = 4) -> list[str]:
        """`n` queries made of the first `words` words of documents spread over the store: queries that match
        (a server warms every stage with them: a query matching nothing skips BM25's top-k and the reranker)."""
        rows = np.linspace(0, len(self.docids) - 1, min(n, len(self.docids))).round().astype(int)
        return [" ".join(t.split()[:words]) for t in self.texts([self.docids[r] for r in rows])]

    def document_states(self):
        """The MICE document states stored in this docstore's index (index/states.py), or None."""
        return DocumentStates.beside(self)

    def token_ids(self, docids: Sequence[str], tokenizer) -> list[np.ndarray]:
        """Stored ids when `tokenizer` is the one the index was built with; otherwise tokenize the stored text."""
        if tokenizer_fingerprint(tokenizer) == self.tokenizer_fingerprint:
            return [np.frombuffer(b, dtype=np.int32) for b in self._fetch("tokens", docids)]
        return tokenize_ids(tokenizer, self.texts(docids))
