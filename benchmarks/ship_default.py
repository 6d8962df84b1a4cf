"""Ship a trained model (CROSS-JEM or MICE) in the package, only if it earns it: on every dev set of the quality
table, the pipeline's output (the model interpolated with the first stage at the fitted alpha) must beat the first
stage alone, and the model must beat zero-shot MiniLM cosine on the mean over dev sets. trecqa is left out: its
given candidate run is sorted by the labels (first stage nDCG@10 1.000), so no reranker can beat it.

    python benchmarks/ship_default.py --model runs/crossjem --name crossjem \
        [--results benchmarks/results/reranker_quality.json]
    python benchmarks/ship_default.py --model runs/mice --name mice

Writes the model in fp16, with its alpha, to its family's directory under rerank_pipeline/models/ (a shipped
CROSS-JEM becomes the built-in default; a test keeps configs/default.yaml equal to it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_pipeline.rerankers import Reranker  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--name", default="crossjem", help="the model's name in the quality table")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/reranker_quality.json"))
    ap.add_argument("--exclude", nargs="*", default=["trecqa/dev"], help="dev sets the gate leaves out")
    args = ap.parse_args()
    results = json.loads(args.results.read_text())
    alpha = results["alphas"][args.name]
    table = results["nDCG@10"]
    shipped = table[f"{args.name} ~ {alpha:g}"] if alpha < 1 else table[args.name]
    dev = [k for k in shipped if k.endswith("/dev") and k not in args.exclude]
    losses = [k for k in dev if shipped[k] <= table["first stage"][k]]
    model_mean = np.mean([table[args.name][k] for k in dev])
    cosine_mean = np.mean([table["MiniLM cosine (zero-shot)"][k] for k in dev])
    print(f"alpha {alpha:g}; dev sets where the default pipeline does not beat its first stage: {losses or 'none'}")
    print(f"mean dev nDCG@10: {args.name} {model_mean:.4f}, zero-shot MiniLM cosine {cosine_mean:.4f}")
    if losses or model_mean <= cosine_mean:
        print("NOT shipped")
        return 1
    model = Reranker.load(args.model)
    model.config["interpolate"] = alpha  # the pipeline's weight for this model, fitted on dev
    target = sys.modules[type(model).__module__].DEFAULT_MODEL_DIR
    model.save(target, fp16=True)
    print(f"shipped {args.model} to {target} (fp16); use it with `reranker: {{type: {model.kind}, model: default, "
          f"interpolate: {alpha:g}}}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
