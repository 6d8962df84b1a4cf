"""Training and dev data as ranking lists: one query, its candidates, graded labels, optional teacher scores.

Sources: a BEIR-layout directory (`queries.jsonl`, `corpus.jsonl`, `qrels/<split>.tsv`, and a candidate run
`runs/*.<split>.trec`), or a jsonl of `{"query", "candidates": [{"id" or "text", "label", "teacher_score"}]}`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..index.docstore import TextDocs
from ..io import InvalidInputError, Problem, beir_qrels_path, read_qrels, read_queries, read_run


@dataclass
class RankingList:
    qid: str
    query: str
    docids: list[str]
    texts: list[str]
    labels: np.ndarray                 # graded relevance, 0 when unjudged
    teacher: np.ndarray | None = None  # teacher probabilities in [0, 1]


def candidate_run_path(data_dir: Path, split: str, run_name: str | None = None) -> Path:
    runs = sorted((data_dir / "runs").glob(f"*.{split}.trec")) if run_name is None else [data_dir / "runs" / run_name]
    if not runs or not runs[0].is_file():
        raise FileNotFoundError(f"{data_dir}: no candidate run for split '{split}' (runs/*.{split}.trec)")
    return runs[0]


def load_beir_lists(data_dir: str | Path, split: str, run_name: str | None = None,
                    max_candidates: int | None = None) -> list[RankingList]:
    data_dir = Path(data_dir)
    qrels = read_qrels(beir_qrels_path(data_dir, split))
    run = read_run(candidate_run_path(data_dir, split, run_name))
    queries = read_queries(data_dir / "queries.jsonl")
    needed = {h.docid for q in run if q in qrels for h in run[q][:max_candidates]}
    docs = TextDocs.from_corpus(data_dir / "corpus.jsonl", needed)
    lists = []
    for qid, hits in run.items():
        if qid not in qrels or qid not in queries:
            continue
        hits = [h for h in hits[:max_candidates] if h.docid in docs]
        docids = [h.docid for h in hits]
        labels = np.array([qrels[qid].get(d, 0) for d in docids], dtype=np.float32)
        lists.append(RankingList(qid, queries[qid], docids, docs.texts(docids), labels))
    return lists


def load_jsonl_lists(path: str | Path) -> list[RankingList]:
    path = Path(path)
    lists, problems = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                cands = obj["candidates"]
                docids = [str(c.get("id", f"{lineno}-{i}")) for i, c in enumerate(cands)]
                texts = [c["text"] for c in cands]
                labels = np.array([float(c.get("label", 0)) for c in cands], dtype=np.float32)
                teacher = ([float(c["teacher_score"]) for c in cands]
                           if all("teacher_score" in c for c in cands) else None)
                lists.append(RankingList(str(obj.get("qid", lineno)), obj["query"], docids, texts, labels,
                                         np.array(teacher, dtype=np.float32) if teacher else None))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
                problems.append(Problem(str(path), lineno, getattr(e, "args", [""])[0] if isinstance(e, KeyError) else "",
                                        f"{type(e).__name__}: {e}"))
    if problems or not lists:
        raise InvalidInputError(problems or [Problem(str(path), 0, "", "no lists")], "training lists")
    return lists


def load_lists(source: str | Path, split: str, max_candidates: int | None = None) -> list[RankingList]:
    source = Path(source)
    if source.is_dir():
        return load_beir_lists(source, split, max_candidates=max_candidates)
    return load_jsonl_lists(source)


def qrels_of(lists: list[RankingList]) -> dict[str, dict[str, int]]:
    return {l.qid: {d: int(y) for d, y in zip(l.docids, l.labels)} for l in lists}


def write_lists_jsonl(lists: list[RankingList], path: str | Path) -> None:
    """The jsonl training format, teacher scores included: distil once, train many times."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for l in lists:
            cands = [{"id": d, "text": t, "label": float(y)} | ({"teacher_score": float(l.teacher[i])}
                                                                 if l.teacher is not None else {})
                     for i, (d, t, y) in enumerate(zip(l.docids, l.texts, l.labels))]
            f.write(json.dumps({"qid": l.qid, "query": l.query, "candidates": cands}) + "\n")
    tmp.replace(path)
