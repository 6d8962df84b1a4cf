"""BEIR-layout dataset directories: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`, `runs/*.<split>.trec`.

The one place that knows this layout (evaluation, training and benchmarks all read datasets through it).
A set without a dev split gets one held out of train at the query level: a fixed share of train queries, chosen
by a hash of the query id (stable across machines and runs), becomes `dev` and is removed from `train`.
"""
from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

from ..types import Qrels, Run
from ..documents import TextDocs
from .records import InvalidInputError, Problem, read_documents
from .trec import beir_qrels_path, read_qrels, read_run

HELDOUT_SHARE = 0.15


def heldout(qid: str, share: float = HELDOUT_SHARE) -> bool:
    """Whether a train query belongs to the held-out dev part (hash of the id, so the split never moves)."""
    return int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


class BeirDataset:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "corpus.jsonl").is_file():
            raise InvalidInputError([Problem(str(self.path / "corpus.jsonl"), 0, "", "file not found")], "dataset")
        self.name = self.path.name

    @cached_property
    def queries(self) -> dict[str, str]:
        from . import read_queries

        return read_queries(self.path / "queries.jsonl", allow_empty=True)

    @property
    def corpus_path(self) -> Path:
        return self.path / "corpus.jsonl"

    def has_split(self, split: str) -> bool:
        return (self.path / "qrels" / f"{split}.tsv").is_file()

    def dev_is_heldout(self) -> bool:
        """True when this set has no dev split of its own, so `dev` is carved out of train."""
        return not self.has_split("dev") and self.has_split("train")

    def qrels(self, split: str) -> Qrels:
        if split in ("train", "dev") and self.dev_is_heldout():
            train = read_qrels(beir_qrels_path(self.path, "train"))
            want_dev = split == "dev"
            return {q: r for q, r in train.items() if heldout(q) == want_dev}
        return read_qrels(beir_qrels_path(self.path, split))

    def candidate_run(self, split: str) -> Run | None:
        """The candidate run that comes with the data for `split` (held-out dev reads train's), or None."""
        source = "train" if split == "dev" and self.dev_is_heldout() else split
        runs = sorted((self.path / "runs").glob(f"*.{source}.trec"))
        return read_run(runs[0]) if runs else None

    def docs(self, only: set[str] | None = None) -> TextDocs:
        """The documents of the corpus file, optionally just the ids in `only` (records.read_documents)."""
        return TextDocs(read_documents(self.corpus_path, only))

    def __repr__(self) -> str:
        return f"BeirDataset({self.path})"
