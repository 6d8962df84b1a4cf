"""Core data model: queries, hits, runs (many queries' rankings) and qrels.

Doc ids and query ids are strings everywhere. Within a ranking, hits are ordered the way trec_eval orders them:
score descending, ties broken by doc id descending (trec_eval compares docnos in reverse), so a run written by
this library and re-read by trec_eval ranks identically.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence, Union

import numpy as np

Queries = dict[str, str]
"""qid -> query text."""

Qrels = dict[str, dict[str, int]]
"""qid -> {docid: relevance grade}."""

QueryInput = Union[str, Sequence[str], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class Hit:
    docid: str
    score: float


def split_by(flat: Sequence, sizes: Iterable[int]) -> list:
    """Consecutive pieces of `flat` of the given sizes: per-query slices of a list made flat over all pairs."""
    pieces, start = [], 0
    for n in sizes:
        pieces.append(flat[start:start + n])
        start += n
    return pieces


def sort_hits(hits: Iterable[Hit]) -> list[Hit]:
    """Order hits as trec_eval does: score descending, then doc id descending."""
    return sorted(hits, key=lambda h: (h.score, h.docid), reverse=True)


class DocSource(Protocol):
    """Where rerankers get candidate text and pre-tokenized ids from (the index docstore, or an in-memory dict)."""

    def texts(self, docids: Sequence[str]) -> list[str]: ...

    def token_ids(self, docids: Sequence[str], tokenizer) -> list[np.ndarray]: ...

    def document_states(self) -> Any: ...  # what an index stored for MICE (index/states.py), or None


class Run:
    """Rankings for many queries: qid -> hits (sorted), plus the document source the hits refer to.

    Retrievers build runs from score matrices (`from_arrays`); hits are only materialised as Python objects when a
    ranking is first read, so a batch search costs little more than the retrieval backend itself.
    """

    __slots__ = ("_rankings", "_arrays", "docs")

    def __init__(self, rankings: Mapping[str, Iterable[Hit]] | None = None, docs: DocSource | None = None):
        self._rankings: dict[str, list[Hit]] | None = {q: sort_hits(h) for q, h in (rankings or {}).items()}
        self._arrays = None
        self.docs = docs

    @classmethod
    def from_sorted(cls, rankings: dict[str, list[Hit]], docs: DocSource | None = None) -> "Run":
        """Wrap rankings the caller guarantees are already in trec_eval order (skips re-sorting)."""
        run = cls(docs=docs)
        run._rankings = rankings
        return run

    @classmethod
    def from_arrays(cls, qids: Sequence[str], ids: np.ndarray, scores: np.ndarray, docids: Sequence[str],
                    tie_rank: np.ndarray, docs: DocSource | None = None) -> "Run":
        """From [queries x k] matrices of internal ids (-1 = no hit) and scores. `tie_rank[i]` orders internal id i
        among equal scores (0 = largest doc id, trec_eval's tie order); rows are re-sorted in one vectorised pass."""
        valid = ids >= 0
        primary = np.where(valid, -scores.astype(np.float64), np.inf)
        order = np.lexsort((np.where(valid, tie_rank[np.maximum(ids, 0)], 0), primary), axis=-1)
        rows = np.arange(len(ids))[:, None]
        run = cls(docs=docs)
        run._rankings = None
        run._arrays = (list(qids), ids[rows, order], scores[rows, order], valid[rows, order], docids)
        return run

    @property
    def rankings(self) -> dict[str, list[Hit]]:
        if self._rankings is None:
            qids, ids, scores, valid, docids = self._arrays
            self._rankings = {
                q: [Hit(docids[i], s) for i, s in zip(row_ids[ok].tolist(), row_scores[ok].tolist())]
                for q, row_ids, row_scores, ok in zip(qids, ids, scores, valid)
            }
            self._arrays = None
        return self._rankings

    @classmethod
    def from_scores(cls, qids: Sequence[str], docids: Sequence[Sequence[str]], scores: Sequence[Sequence[float]],
                    docs: DocSource | None = None) -> "Run":
        """Each query's doc ids with their scores, in any order (sorted here)."""
        return cls({q: [Hit(d, float(s)) for d, s in zip(ds, sc)] for q, ds, sc in zip(qids, docids, scores)}, docs)

    @classmethod
    def from_dict(cls, scores: Mapping[str, Mapping[str, float]], docs: DocSource | None = None) -> "Run":
        return cls({q: [Hit(d, float(s)) for d, s in ds.items()] for q, ds in scores.items()}, docs)

    def __getitem__(self, qid: str) -> list[Hit]:
        return self.rankings[qid]

    def __contains__(self, qid: object) -> bool:
        return qid in self.rankings

    def __iter__(self) -> Iterator[str]:
        return iter(self.rankings)

    def __len__(self) -> int:
        return len(self._arrays[0]) if self._rankings is None else len(self._rankings)

    def items(self):
        return self.rankings.items()

    def cut(self, k: int) -> "Run":
        if self._rankings is None:
            qids, ids, scores, valid, docids = self._arrays
            run = Run(docs=self.docs)
            run._rankings, run._arrays = None, (qids, ids[:, :k], scores[:, :k], valid[:, :k], docids)
            return run
        return Run.from_sorted({q: h[:k] for q, h in self.rankings.items()}, self.docs)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """qid -> {docid: score}, the shape pytrec_eval and ir_measures take."""
        return {q: {h.docid: h.score for h in hits} for q, hits in self.rankings.items()}

    def write_trec(self, path: str | Path, tag: str = "rerank-pipeline") -> None:
        """A TREC run file (`qid Q0 docid rank score tag`), written aside and renamed into place."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for qid, hits in self.items():
                f.writelines(f"{qid} Q0 {h.docid} {rank} {h.score:.6f} {tag}\n" for rank, h in enumerate(hits, start=1))
        tmp.replace(path)

    def __repr__(self) -> str:
        n = sum(len(h) for h in self.rankings.values())
        return f"Run({len(self.rankings)} queries, {n} hits)"


def as_queries(queries: QueryInput) -> Queries:
    """Normalise user input to qid -> text; bare strings get qids '1', '2', ... in input order."""
    if isinstance(queries, str):
        return {"1": queries}
    if isinstance(queries, Mapping):
        return {str(q): t for q, t in queries.items()}
    return {str(i): t for i, t in enumerate(queries, start=1)}
