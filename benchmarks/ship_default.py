"""Ship a trained model (CROSS-JEM or MICE) in the package, only if it earns it. The gate reads the leave-one-
dataset-out figures of benchmarks/reranker_quality.py, where the model reranks as the residual of the first stage's
features (the Combine stage), and asks for all of:
  * mean dev nDCG@10 above the first stage's and above the free baseline's (the same features, no model, fitted the
    same way), over the dev sets the table fits on (trecqa is out: its given run is sorted by the labels);
  * no dev set significantly below its first stage (paired randomization, p < 0.05);
  * SciFact test not below its first stage (weights fitted on all dev sets, as shipped).

    python benchmarks/ship_default.py --model runs/crossjem --name crossjem \
        [--results benchmarks/results/reranker_quality.json]

A model that passes becomes the default reranker: rerank_pipeline/models/default.json names it with the feature
weights and gate fitted on all dev sets; a model directory is copied (fp16) under rerank_pipeline/models/, a packaged
model (the MS MARCO teacher) stays in its package. rerank_pipeline/models/README.md is its card.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FREE = "free baseline (features, LODO)"


def cosine_row(table: dict) -> str:
    """The zero-shot dual-encoder row of a quality table ('MiniLM cosine (zero-shot)' or another encoder's)."""
    return next(s for s in table if s.endswith(" cosine (zero-shot)"))


def gate_failures(results: dict, name: str, teacher: str | None = None, alpha: float = 0.05) -> list[str]:
    """Why `name + features (LODO)` may not ship (empty: it passes). With `teacher` (its row in the table), the
    raised gate: the model alone within 2% of the teacher's mean and above zero-shot MiniLM cosine; the combination
    at least +0.02 over the free features and above the teacher alone; SciFact test at least 0.74."""
    system = f"{name} + features (LODO)"
    table, tests = results["nDCG@10"], results["vs_first_stage"][system]
    dev = results["gate_sets"]
    mean = {s: float(np.mean([table[s][k] for k in dev])) for s in table if all(k in table[s] for k in dev)}
    failures = [f"mean dev nDCG@10 {mean[system]:.4f} is not above the {other}'s {mean[other]:.4f}"
                for other in ("first stage", FREE) if mean[system] <= mean[other]]
    failures += [f"{k}: significantly below its first stage ({tests[k][0]:+.4f}, p={tests[k][1]:.3f})"
                 for k in dev if tests[k][0] < 0 and tests[k][1] < alpha]
    scifact = table[system].get("scifact/test")
    if scifact is not None and scifact < table["first stage"]["scifact/test"]:
        failures.append(f"scifact/test: {scifact:.4f} below its first stage {table['first stage']['scifact/test']:.4f}")
    if teacher is not None:
        if mean[name] < 0.98 * mean[teacher]:
            failures.append(f"alone {mean[name]:.4f}: not within 2% of the teacher's {mean[teacher]:.4f}")
        cosine = cosine_row(table)
        if mean[name] <= mean[cosine]:
            failures.append(f"alone {mean[name]:.4f}: not above zero-shot {cosine.split(' (')[0]} {mean[cosine]:.4f}")
        if mean[system] < mean[FREE] + 0.02:
            failures.append(f"with features {mean[system]:.4f}: less than +0.02 over the free features "
                            f"{mean[FREE]:.4f}")
        if mean[system] <= mean[teacher]:
            failures.append(f"with features {mean[system]:.4f}: not above the teacher alone {mean[teacher]:.4f}")
        if scifact is not None and scifact < 0.74:
            failures.append(f"scifact/test: {scifact:.4f} below 0.74")
    return failures


def model_card(results: dict, name: str, training: dict | None, model_config: dict, notes: list[str],
               teacher: str | None = None, what: str = "") -> str:
    """The shipped model's README: what it is, how it was trained, and the figures the gate read."""
    system = f"{name} + features (LODO)"
    table = results["nDCG@10"]
    combine = model_config["combine"]
    columns = ["first stage", cosine_row(table), FREE] + ([teacher] if teacher and teacher != name else []) \
        + [name, system]
    lines = [f"# {name}: the default reranker, on top of the first stage's features", "",
             "Per candidate: `score = " + " + ".join(f"{w:g} * z({f})" for f, w in combine["weights"].items())
             + f" + {combine['gate']:.4g} * model`, z = per-query z-score (rerank_pipeline/rerankers/combine.py). "
             "Features: `run` = the score of the run being reranked, `bm25` = the candidate's BM25 score from the "
             "index, `dense` = all-MiniLM-L6-v2 cosine (stored embeddings, or encoded on the fly without an index). "
             + (what + " " if what else "") + f"The model reads queries up to {model_config['max_query_tokens']} and "
             f"items up to {model_config['max_item_tokens']} word pieces"
             + (f", packed into groups of at most {model_config['union_capacity']} union tokens"
                if "union_capacity" in model_config else "") + ".", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if training:
        cfg = training["config"]
        residual = (" --combine " + ",".join(f"{f}={w:g}" for f, w in cfg["combine"]["weights"].items())
                    if cfg.get("combine") else "")
        lines += ["## Training", "",
                  f"`rerank train --family {model_config['kind']} --loss {cfg['loss']}{residual}"
                  f" --list-size {cfg['list_size']} --lr {cfg['lr']:g} --lists-per-epoch {cfg['lists_per_epoch']} "
                  f"--epochs {cfg['epochs']} --data ...` (the exact command: benchmarks/results/training_cpu.md): "
                  "the train splits of wikiqa, selqa, trecqa, twitter-url, semeval-cqa-qa, semeval-cqa-qq, crowdflower, "
                  "amazon-google, dbpedia-titles, nfcorpus, scifact (85%; 15% held out as dev) and msmarco-dev-sample. "
                  f"Best dev epoch {training['best_epoch']} of {len(training['history'])}, "
                  f"{training.get('train_seconds', 0) / 60:.0f} min on 2 CPU cores.", ""]
    lines += ["## Dev figures (nDCG@10; the gate's input)", "",
              "LODO = weights and gate fitted on the other dev sets, never on the row's own; test rows use the weights "
              "fitted on all dev sets (what ships). Protocol per set in benchmarks/results/reranker_quality.md "
              "(judged-only on sets with given candidates, all queries on scifact/nfcorpus).", "",
              "| set | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for key in table["first stage"]:
        lines.append(f"| {key} | " + " | ".join(f"{table[c][key]:.4f}" for c in columns) + " |")
    dev = results["gate_sets"]
    lines.append(f"| mean of {len(dev)} dev sets | " + " | ".join(
        f"{np.mean([table[c][k] for k in dev]):.4f}" for c in columns) + " |")
    ablation = results["ablation"]
    lines += ["", "## What each feature is worth, and what it costs", "",
              "Mean dev nDCG@10 (LODO) when the fit may not use a feature:", "",
              "| system | " + " | ".join(ablation[system]) + " |", "|---|" + "---|" * len(ablation[system])]
    lines += [f"| {s} | " + " | ".join(f"{v:.4f}" for v in row.values()) + " |" for s, row in ablation.items()
              if s in (FREE, system)]
    timings = results["timings_ms"]
    lines += ["", "Milliseconds per query on 2 CPU cores (features from the index; 'on the fly' = MiniLM encodes "
              "query and candidates, as without an index):", "",
              "| set | " + " | ".join(next(iter(timings.values()))) + " |",
              "|---|" + "---|" * len(next(iter(timings.values())))]
    lines += [f"| {k} | " + " | ".join(f"{v:.1f}" for v in t.values()) + " |" for k, t in timings.items()]
    lines += ["", "Without an index (`rerank eval --rerank-run`, a raw candidate list) the dense feature is encoded on "
              "the fly, which for long items costs more than the model itself; `combine: {features: [run, bm25]}` "
              "(YAML) runs without it, at the cost the ablation row 'without dense' shows.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--name", default="crossjem", help="the model's name in the quality table")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/reranker_quality.json"))
    ap.add_argument("--note", action="append", default=[], help="a line for the model card's Notes (repeatable)")
    ap.add_argument("--teacher", default=None, help="the teacher's name in the table: applies the raised gate")
    ap.add_argument("--ship-as", default=None, help="directory name under rerank_pipeline/models/ (default: its own)")
    ap.add_argument("--what", default="", help="a sentence for the model card: what the model is and where it is from")
    ap.add_argument("--backend", default=None, help="the backend the table measured it on (e.g. auto), recorded")
    args = ap.parse_args()
    results = json.loads(args.results.read_text())
    system = f"{args.name} + features (LODO)"
    if system not in results["nDCG@10"]:
        print(f"{args.results}: no rows for {system!r}; run benchmarks/reranker_quality.py --model {args.name}=DIR")
        return 2
    dev = results["gate_sets"]
    teacher_row = (args.teacher,) if args.teacher not in (None, args.name) else ()
    for s in ("first stage", FREE, cosine_row(results["nDCG@10"]), args.name, system) + teacher_row:
        print(f"mean dev nDCG@10 {s}: {np.mean([results['nDCG@10'][s][k] for k in dev]):.4f}")
    failures = gate_failures(results, args.name, args.teacher)
    if failures:
        print("NOT shipped:\n  " + "\n  ".join(failures))
        return 1
    from rerank_pipeline.rerankers import DEFAULT_FILE, MODELS_DIR, Reranker

    own_weights = args.model.is_dir()  # a packaged model's files stay in their package
    model = Reranker.load(args.model, backend="torch" if own_weights else args.backend or "auto")
    shipped = results["settings"][system]["*"]
    combine = {"weights": {f: w for f, w in shipped["weights"].items() if w}, "gate": shipped["gate"],
               **({"dense_encoder": results["encoder"]} if "encoder" in results else {})}
    training = args.model / "training.json"
    card = model_card(results, args.name, json.loads(training.read_text()) if training.is_file() else None,
                      {**model.config, "combine": combine}, args.note, args.teacher, args.what)
    if own_weights:
        model.config.pop("interpolate", None)
        model.config["combine"] = combine
        target = MODELS_DIR / (args.ship_as or args.model.name)
        model.save(target, fp16=True)
        (target / "README.md").write_text(card)
        spec = {"type": model.kind, "model": target.name, "combine": True}
    else:
        spec = {"type": model.kind, "model": str(args.model), "combine": combine}
    if args.backend:
        spec["backend"] = args.backend
    (MODELS_DIR / "README.md").write_text(card)
    DEFAULT_FILE.write_text(json.dumps({"reranker": spec, "gate": "benchmarks/results/ship_gate.md"}, indent=2) + "\n")
    print(f"shipped {args.model} as the default reranker ({DEFAULT_FILE}: {spec})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
