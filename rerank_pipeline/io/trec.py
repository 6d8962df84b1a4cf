"""TREC runs and qrels, BEIR qrels tsv, and jsonl runs."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..types import Hit, Qrels, Run, sort_hits
from .records import InvalidInputError, Problem


def read_run(path: str | Path) -> Run:
    """Read a TREC run (`qid Q0 docid rank score tag`) or a jsonl run (`{"qid", "docid", "score"}` per line)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError([Problem(str(path), 0, "", "file not found")], "run")
    rankings: dict[str, list[Hit]] = defaultdict(list)
    problems: list[Problem] = []
    is_jsonl = path.suffix.lower() in (".jsonl", ".json")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                if is_jsonl:
                    obj = json.loads(line)
                    qid, docid, score = str(obj["qid"]), str(obj["docid"]), float(obj["score"])
                else:
                    qid, _, docid, _, score, *_ = line.split()
                    score = float(score)
            except (ValueError, KeyError, TypeError) as e:
                problems.append(Problem(str(path), lineno, "", f"not a run line ({type(e).__name__}: {e})"))
                continue
            rankings[qid].append(Hit(docid, score))
    if problems:
        raise InvalidInputError(problems, "run")
    if not rankings:
        raise InvalidInputError([Problem(str(path), 0, "", "empty run")], "run")
    return Run({q: sort_hits(h) for q, h in rankings.items()})


def write_run(run: Run, path: str | Path, tag: str = "rerank-pipeline") -> None:
    run.write_trec(path, tag)


def read_qrels(path: str | Path) -> Qrels:
    """Read TREC qrels (`qid iter docid rel`) or BEIR tsv (`query-id corpus-id score`, with header)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError([Problem(str(path), 0, "", "file not found")], "qrels")
    qrels: Qrels = defaultdict(dict)
    problems: list[Problem] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts or (lineno == 1 and parts[0] in ("query-id", "qid", "query_id")):
                continue
            try:
                if len(parts) == 3:
                    qid, docid, rel = parts
                elif len(parts) == 4:
                    qid, _, docid, rel = parts
                else:
                    raise ValueError(f"expected 3 or 4 columns, got {len(parts)}")
                qrels[qid][docid] = int(float(rel))
            except ValueError as e:
                problems.append(Problem(str(path), lineno, "", str(e)))
    if problems:
        raise InvalidInputError(problems, "qrels")
    if not qrels:
        raise InvalidInputError([Problem(str(path), 0, "", "no judgments")], "qrels")
    return dict(qrels)


def beir_qrels_path(data_dir: str | Path, split: str) -> Path:
    """`DIR/qrels/SPLIT.tsv`, or an error naming the splits the directory does have."""
    path = Path(data_dir) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        have = sorted(p.stem for p in (Path(data_dir) / "qrels").glob("*.tsv"))
        raise FileNotFoundError(f"{data_dir}: no split '{split}' (have: {', '.join(have) or 'none'})")
    return path
