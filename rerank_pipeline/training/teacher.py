"""A teacher's scores, each (query, document) pair computed once: kept in SQLite keyed by (the teacher's
fingerprint and truncation, sha1 of the query, sha1 of the document's text), committed a chunk of lists at a time,
so a killed scoring run resumes where its last commit ended and later trainings read what earlier ones paid for. A
changed teacher (other weights, or another truncation) never reads another's scores.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..encoders import tokenize_ids
from .data import RankingList

CHUNK_LISTS = 64  # lists scored (and committed) together


def _digest(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class CachedTeacher:
    """`teacher` (a Reranker) with a score store at `path` (None: in memory only). Scores are raw logits."""

    def __init__(self, teacher, path: str | Path | None = None):
        self.teacher = teacher
        # the weights and what the teacher reads of each text: a changed truncation is another teacher
        self.key = f"{teacher.fingerprint}-q{teacher.config['max_query_tokens']}-d{teacher.config['max_item_tokens']}"
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path) if self.path is not None else ":memory:", check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS scores (teacher TEXT, query BLOB, doc BLOB, logit REAL, "
                        "PRIMARY KEY (teacher, query, doc)) WITHOUT ROWID")
        self.lock = threading.Lock()

    def _lookup(self, pairs: list[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], float]:
        found = {}
        with self.lock:
            for start in range(0, len(pairs), 400):  # SQLite's bound-parameter limit
                part = pairs[start:start + 400]
                where = " OR ".join(["(query = ? AND doc = ?)"] * len(part))
                rows = self.db.execute(f"SELECT query, doc, logit FROM scores WHERE teacher = ? AND ({where})",
                                       [self.key] + [x for pair in part for x in pair]).fetchall()
                found.update({(q, d): s for q, d, s in rows})
        return found

    def logits(self, queries: Sequence[str], documents: Sequence[Sequence[str]], show_progress: bool = False,
               desc: str = "teacher") -> list[np.ndarray]:
        """The teacher's logits for each query's documents (texts), computing only pairs not stored yet."""
        from tqdm.auto import tqdm

        out: list[np.ndarray] = []
        bar = tqdm(total=len(queries), desc=desc, disable=not show_progress, unit="lists")
        for start in range(0, len(queries), CHUNK_LISTS):
            qs, ds = queries[start:start + CHUNK_LISTS], documents[start:start + CHUNK_LISTS]
            keys = [[(_digest(q), _digest(d)) for d in docs] for q, docs in zip(qs, ds)]
            known = self._lookup(list({k for row in keys for k in row}))
            todo = [(i, [j for j, k in enumerate(row) if k not in known]) for i, row in enumerate(keys)]
            todo = [(i, js) for i, js in todo if js]
            if todo:
                scores = self.teacher.score_ids(self.teacher.tokenize_queries([qs[i] for i, _ in todo]),
                                                [tokenize_ids(self.teacher.tokenizer, [ds[i][j] for j in js],
                                                              self.teacher.config["max_item_tokens"])
                                                 for i, js in todo])
                fresh = {keys[i][j]: float(s) for (i, js), row in zip(todo, scores) for j, s in zip(js, row)}
                with self.lock, self.db:
                    self.db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                                        [(self.key, q, d, s) for (q, d), s in fresh.items()])
                known.update(fresh)
            out += [np.array([known[k] for k in row], dtype=np.float64) for row in keys]
            bar.update(len(qs))
        bar.close()
        return out

    def fill(self, lists: Sequence[RankingList], picks: Sequence[np.ndarray] | None = None,
             show_progress: bool = False) -> None:
        """Set each list's `teacher` (probabilities, sigmoid of the logits) for its `picks` (default: every
        candidate); items never scored stay NaN."""
        picks = picks if picks is not None else [np.arange(len(l.docids)) for l in lists]
        logits = self.logits([l.query for l in lists], [[l.texts[k] for k in p] for l, p in zip(lists, picks)],
                             show_progress)
        for l, p, s in zip(lists, picks, logits):
            if l.teacher is None:
                l.teacher = np.full(len(l.docids), np.nan, dtype=np.float64)
            l.teacher[p] = 1.0 / (1.0 + np.exp(-s))
