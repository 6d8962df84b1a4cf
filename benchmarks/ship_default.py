"""Ship a trained model (CROSS-JEM or MICE) in the package, only if it earns it. The gate reads the leave-one-
dataset-out figures of benchmarks/reranker_quality.py, where the model reranks as the residual of the first stage's
features (the Combine stage), and asks for all of:
  * mean dev nDCG@10 above the first stage's and above the free baseline's (the same features, no model, fitted the
    same way), over the dev sets the table fits on (trecqa is out: its given run is sorted by the labels);
  * no dev set significantly below its first stage (paired randomization, p < 0.05);
  * SciFact test not below its first stage (weights fitted on all dev sets, as shipped).

    python benchmarks/ship_default.py --model runs/crossjem --name crossjem \
        [--results benchmarks/results/reranker_quality.json]

A model that passes is written in fp16 to its family's directory under rerank_pipeline/models/, with the feature
weights and gate fitted on all dev sets; a shipped CROSS-JEM becomes the default pipeline's reranker.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FREE = "free baseline (features, LODO)"


def gate_failures(results: dict, name: str, alpha: float = 0.05) -> list[str]:
    """Why `name + features (LODO)` may not ship (empty: it passes)."""
    system = f"{name} + features (LODO)"
    table, tests = results["nDCG@10"], results["vs_first_stage"][system]
    dev = results["gate_sets"]
    means = {s: float(np.mean([table[s][k] for k in dev])) for s in (system, "first stage", FREE)}
    failures = [f"mean dev nDCG@10 {means[system]:.4f} is not above the {other}'s {means[other]:.4f}"
                for other in ("first stage", FREE) if means[system] <= means[other]]
    failures += [f"{k}: significantly below its first stage ({tests[k][0]:+.4f}, p={tests[k][1]:.3f})"
                 for k in dev if tests[k][0] < 0 and tests[k][1] < alpha]
    if "scifact/test" in table[system] and table[system]["scifact/test"] < table["first stage"]["scifact/test"]:
        failures.append(f"scifact/test: {table[system]['scifact/test']:.4f} below its first stage "
                        f"{table['first stage']['scifact/test']:.4f}")
    return failures


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--name", default="crossjem", help="the model's name in the quality table")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/reranker_quality.json"))
    args = ap.parse_args()
    results = json.loads(args.results.read_text())
    system = f"{args.name} + features (LODO)"
    if system not in results["nDCG@10"]:
        print(f"{args.results}: no rows for {system!r}; run benchmarks/reranker_quality.py --model {args.name}=DIR")
        return 2
    dev = results["gate_sets"]
    for s in ("first stage", FREE, "MiniLM cosine (zero-shot)", args.name, system):
        print(f"mean dev nDCG@10 {s}: {np.mean([results['nDCG@10'][s][k] for k in dev]):.4f}")
    failures = gate_failures(results, args.name)
    if failures:
        print("NOT shipped:\n  " + "\n  ".join(failures))
        return 1
    from rerank_pipeline.rerankers import Reranker

    model = Reranker.load(args.model)
    shipped = results["settings"][system]["*"]
    model.config.pop("interpolate", None)
    model.config["combine"] = {"weights": {f: w for f, w in shipped["weights"].items() if w}, "gate": shipped["gate"]}
    target = sys.modules[type(model).__module__].DEFAULT_MODEL_DIR
    model.save(target, fp16=True)
    print(f"shipped {args.model} to {target} (fp16) with {model.config['combine']}; the default config reranks with "
          f"`reranker: {{type: {model.kind}, model: default, combine: true}}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
