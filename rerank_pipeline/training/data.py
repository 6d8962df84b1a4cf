"""Training and dev data as ranking lists: one query, its candidates, graded labels, optional teacher scores.

Sources: a BEIR-layout directory, whose lists are built from the project's own first stages over that corpus (BM25
and, where the index has it, dense top-k) plus the candidate run that comes with the data, all judged positives
added for training; or a jsonl of `{"query", "candidates": [{"id" or "text", "label", "teacher_score"}]}`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..encoders import recorded_name
from ..io import InvalidInputError, Problem
from ..io.beir import BeirDataset
from ..rerankers.combine import FEATURES, FeatureExtractor


@dataclass
class RankingList:
    qid: str
    query: str
    docids: list[str]
    texts: list[str]
    labels: np.ndarray                 # graded relevance, 0 when unjudged
    teacher: np.ndarray | None = None  # teacher probabilities in [0, 1]
    source: str = ""                   # the dataset it came from (mixing weights are per source)
    features: np.ndarray | None = None  # raw first-stage features [candidates x combine.FEATURES], NaN = absent
    dense_encoder: str | None = None   # the dual encoder whose cosine `features` holds (as its index records it)
    token_ids: dict = field(default_factory=dict, repr=False, compare=False)  # (tokenizer, length) -> ids


@dataclass
class ListSpec:
    """How lists are drawn from a BEIR directory. k = 0 turns a source off."""

    given_k: int = 30            # top of the candidate run that comes with the data
    bm25_k: int = 20             # the project's BM25 over the dataset's corpus
    dense_k: int = 20            # the project's dual encoder, when the dataset's index has a dense stage
    add_positives: bool = True   # judged positives the retrievers missed (training only, never for dev)
    require_positive: bool = True
    max_lists: int | None = None  # deterministic sample of queries (tests, smoke runs); None = all


def dataset_index(dataset: BeirDataset, index_dir: str | Path, dense: bool, show_progress: bool = False,
                  encoder: str | None = None):
    """The project index over a dataset's corpus, built once under `index_dir` (a dense stage with `encoder`, the
    default one unless named, only if asked). An index already there with another dense encoder is an error."""
    from ..index import Index, InvalidIndexError, build_index

    try:
        idx = Index.open(dataset.name, index_dir)
        if "dense" in idx.stages and dense and idx.manifest["dense"]["encoder"] != recorded_name(encoder):
            raise ValueError(f"{idx.path}: built with the dense encoder {idx.manifest['dense']['encoder']!r}, not "
                             f"{recorded_name(encoder)!r}; give another index directory")
        if not dense or "dense" in idx.stages:
            return idx
    except InvalidIndexError:
        pass
    return build_index(dataset.corpus_path, dataset.name, index_dir, dense=dense, skip_invalid=True,
                       show_progress=show_progress, encoder=encoder)[0]


def build_lists(dataset: BeirDataset, split: str, spec: ListSpec, index=None) -> list[RankingList]:
    """One list per query of `split`: the union of the given run's, BM25's and dense top-k (in that order),
    judged positives appended when `spec.add_positives`."""
    qrels = dataset.qrels(split)
    queries = dataset.queries
    qids = sorted(q for q in qrels if q in queries and queries[q].strip()
                  and (not spec.require_positive or any(r > 0 for r in qrels[q].values())))
    if spec.max_lists and len(qids) > spec.max_lists:
        qids = sorted(np.random.default_rng(0).choice(qids, spec.max_lists, replace=False).tolist())
    topics = {q: queries[q] for q in qids}
    rankings = []
    given = dataset.candidate_run(split) if spec.given_k else None
    if given is not None:
        rankings.append((given, spec.given_k))
    if index is not None and spec.bm25_k and "bm25" in index.stages:
        rankings.append((index.bm25(spec.bm25_k).search(topics), spec.bm25_k))
    if index is not None and spec.dense_k and "dense" in index.stages:
        rankings.append((index.dense(spec.dense_k).search(topics), spec.dense_k))
    candidates: dict[str, list[str]] = {}
    for q in qids:
        seen: dict[str, None] = {}
        for run, k in rankings:
            if q in run:
                seen.update((h.docid, None) for h in run[q][:k])
        if spec.add_positives:
            seen.update((d, None) for d, r in qrels[q].items() if r > 0)
        candidates[q] = list(seen)
    needed = {d for ds in candidates.values() for d in ds}
    docs = index.docstore if index is not None else dataset.docs(needed)
    lists = []
    for q in qids:
        docids = [d for d in candidates[q] if d in docs]
        if not docids:
            continue
        labels = np.array([qrels[q].get(d, 0) for d in docids], dtype=np.float32)
        if spec.require_positive and not (labels > 0).any():
            continue
        lists.append(RankingList(q, queries[q], docids, docs.texts(docids), labels, source=dataset.name))
    if index is not None:
        add_features(lists, index)
    return lists


def lists_from_index(index, queries: dict[str, str], k: int = 30) -> list[RankingList]:
    """Unlabelled lists for distillation on a user's own corpus: each query's top `k` from the index's default
    first stage (no reranker), with the first stage's features. A teacher's scores are the only targets."""
    from ..config import open_pipeline

    run = open_pipeline(index, None, rerank=False).search(queries)
    lists = []
    for qid, hits in run.items():
        docids = [h.docid for h in hits[:k]]
        if docids:
            lists.append(RankingList(qid, queries[qid], docids, index.docstore.texts(docids),
                                     np.zeros(len(docids), dtype=np.float32), source=index.name))
    add_features(lists, index)
    return lists


def add_features(lists: list[RankingList], index) -> None:
    """The free first-stage features of every candidate (BM25, stored dual-encoder cosine), so a reranker can be
    trained as their residual. The `run` feature stays absent: a list mixes several retrievers' candidates."""
    extractor = FeatureExtractor(index, use=("bm25", "dense") if "dense" in index.stages else ("bm25",))
    for start in range(0, len(lists), 256):
        part = lists[start:start + 256]
        for l, f in zip(part, extractor.extract([l.query for l in part], [l.docids for l in part], index.docstore)):
            l.features, l.dense_encoder = f, extractor.encoder  # the index's dense encoder (None without one)


def _open_text(path: Path, mode: str):
    """Lists files may be gzip-compressed (`.gz`): what travels to a GPU machine must stay small."""
    import gzip

    return gzip.open(path, mode + "t", encoding="utf-8") if path.suffix == ".gz" else open(path, mode, encoding="utf-8")


def load_jsonl_lists(path: str | Path) -> list[RankingList]:
    path = Path(path)
    lists, problems = [], []
    with _open_text(path, "r") as f:
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
                features = (np.array([[c["features"].get(f, np.nan) for f in FEATURES] for c in cands], dtype=np.float64)
                            if all("features" in c for c in cands) else None)
                if not isinstance(obj.get("dense_encoder", ""), str):
                    raise TypeError(f"dense_encoder must be an encoder name, got {obj['dense_encoder']!r}")
                lists.append(RankingList(str(obj.get("qid", lineno)), obj["query"], docids, texts, labels,
                                         np.array(teacher, dtype=np.float32) if teacher else None,
                                         str(obj.get("source", path.stem)), features, obj.get("dense_encoder")))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
                problems.append(Problem(str(path), lineno, getattr(e, "args", [""])[0] if isinstance(e, KeyError) else "",
                                        f"{type(e).__name__}: {e}"))
    if problems or not lists:
        raise InvalidInputError(problems or [Problem(str(path), 0, "", "no lists")], "training lists")
    return lists


def load_lists(source: str | Path, split: str, spec: ListSpec | None = None, index_dir: str | Path | None = None,
               dense: bool = False) -> list[RankingList]:
    """Lists from a BEIR directory (retrieval over an index kept in `index_dir`; without one, the given run only)
    or a lists jsonl."""
    source = Path(source)
    if not source.is_dir():
        return load_jsonl_lists(source)
    spec = spec or ListSpec()
    dataset = BeirDataset(source)
    index = dataset_index(dataset, index_dir, dense) if index_dir is not None else None
    return build_lists(dataset, split, spec, index)


def load_many(sources, split: str, spec: ListSpec | None = None, index_dir: str | Path | None = None,
              dense: bool = False, show_progress: bool = True) -> list[RankingList]:
    """`load_lists` over several sources, concatenated (each list keeps its source for mixing and dev tables)."""
    from tqdm.auto import tqdm

    out: list[RankingList] = []
    for source in tqdm(list(sources), desc=f"{split} lists", disable=not show_progress):
        out += load_lists(source, split, spec, index_dir, dense)
    return out


def qrels_of(lists: list[RankingList]) -> dict[str, dict[str, int]]:
    return {l.qid: {d: int(y) for d, y in zip(l.docids, l.labels)} for l in lists}


def write_lists_jsonl(lists: list[RankingList], path: str | Path, max_chars: int | None = None) -> None:
    """The jsonl training format (gzip when the name ends in .gz), teacher scores and features (4 decimals: what
    travels to a GPU machine must stay small) included: distil once, train many times. `max_chars` cuts texts (a
    model reads at most a few hundred word pieces anyway)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp" + path.suffix)
    with _open_text(tmp, "w") as f:
        for l in lists:
            cands = [{"id": d, "text": t[:max_chars], "label": float(y)}
                     | ({"teacher_score": float(l.teacher[i])} if l.teacher is not None else {})
                     | ({"features": {f: round(float(v), 4) for f, v in zip(FEATURES, l.features[i]) if not np.isnan(v)}}
                        if l.features is not None else {})
                     for i, (d, t, y) in enumerate(zip(l.docids, l.texts, l.labels))]
            f.write(json.dumps({"qid": l.qid, "query": l.query, "source": l.source, "candidates": cands}
                               | ({"dense_encoder": l.dense_encoder} if l.dense_encoder else {})) + "\n")
    tmp.replace(path)
