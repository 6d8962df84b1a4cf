"""The ship gate (benchmarks/ship_default.py) refuses a model that loses where the gate says it must not."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FREE = "free baseline (features, LODO)"


def results(model_rows: dict, test: float = 0.80) -> dict:
    first = {"a/dev": 0.50, "b/dev": 0.60, "c/dev": 0.70, "scifact/test": 0.75}
    free = {"a/dev": 0.55, "b/dev": 0.62, "c/dev": 0.70, "scifact/test": 0.76}
    model = {**model_rows, "scifact/test": test}
    system = "m + features (LODO)"
    return {"nDCG@10": {"first stage": first, FREE: free, "MiniLM cosine (zero-shot)": free, "m": model,
                        system: model},
            "vs_first_stage": {system: {k: (model[k] - first[k], 0.01 if abs(model[k] - first[k]) > 0.05 else 0.5)
                                        for k in model}},
            "settings": {system: {"*": {"weights": {"run": 0.2, "bm25": 0.3, "dense": 0.5}, "gate": 0.4}}},
            "gate_sets": ["a/dev", "b/dev", "c/dev"]}


def run_gate(tmp_path, data) -> subprocess.CompletedProcess:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ship_default.py"), "--model", str(tmp_path / "none"),
                           "--name", "m", "--results", str(path)], capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("rows,test,reason", [
    ({"a/dev": 0.70, "b/dev": 0.70, "c/dev": 0.60}, 0.80, "c/dev: significantly below its first stage"),
    ({"a/dev": 0.54, "b/dev": 0.62, "c/dev": 0.70}, 0.80, "is not above the free baseline"),
    ({"a/dev": 0.70, "b/dev": 0.70, "c/dev": 0.72}, 0.70, "scifact/test: 0.7000 below its first stage"),
])
def test_gate_refuses_a_model_that_loses(tmp_path, rows, test, reason):
    out = run_gate(tmp_path, results(rows, test))
    assert out.returncode == 1 and "NOT shipped" in out.stdout and reason in out.stdout, out.stdout + out.stderr


def test_gate_passes_a_model_that_wins_everywhere_it_must_and_writes_its_card(tmp_path):
    from importlib import util

    spec = util.spec_from_file_location("ship_default", ROOT / "benchmarks" / "ship_default.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = results({"a/dev": 0.70, "b/dev": 0.70, "c/dev": 0.72})
    assert module.gate_failures(data, "m") == []
    data["ablation"] = {FREE: {"all features": 0.62, "without dense": 0.55}, "m + features (LODO)": {
        "all features": 0.71, "without dense": 0.60}}
    data["timings_ms"] = {"a/dev": {"bm25 (index)": 0.1, "m": 30.0}}
    training = {"config": {"loss": "ce", "combine": {"weights": {"bm25": 0.25, "dense": 0.75}}, "list_size": 16,
                           "lr": 1e-4, "lists_per_epoch": 1200, "epochs": 5},
                "best_epoch": 3, "history": [{}] * 4, "train_seconds": 1800}
    config = {"combine": data["settings"]["m + features (LODO)"]["*"], "kind": "crossjem", "max_query_tokens": 32,
              "max_item_tokens": 128, "union_capacity": 256}
    card = module.model_card(data, "m", training, config, ["served with longer items than it was trained on"])
    assert "| a/dev | 0.5000 | 0.5500 | 0.5500 | 0.7000 | 0.7000 |" in card
    assert "items up to 128 word pieces" in card and "- served with longer items" in card
    assert "| mean of 3 dev sets |" in card and "rerank train --family crossjem --loss ce --combine bm25=0.25,dense=0.75" in card and "30 min" in card


@pytest.mark.parametrize("alone,teacher,combined_bump,reason", [
    (0.60, 0.66, 0.05, "not within 2% of the teacher"),
    (0.66, 0.66, 0.01, "less than +0.02 over the free features"),
    (0.70, 0.74, 0.05, "not above the teacher alone"),
])
def test_the_raised_gate_measures_the_model_against_its_teacher(tmp_path, alone, teacher, combined_bump, reason):
    from importlib import util

    spec = util.spec_from_file_location("ship_default", ROOT / "benchmarks" / "ship_default.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = results({"a/dev": 0.70, "b/dev": 0.70, "c/dev": 0.72}, test=0.75)
    free = data["nDCG@10"][FREE]
    data["nDCG@10"]["m + features (LODO)"] = {k: v + combined_bump for k, v in free.items()}
    data["nDCG@10"]["m"] = {k: alone for k in free}
    data["nDCG@10"]["teacher"] = {k: teacher for k in free}
    data["nDCG@10"]["MiniLM cosine (zero-shot)"] = {k: 0.5 for k in free}
    failures = module.gate_failures(data, "m", "teacher")
    assert any(reason in f for f in failures), failures


def test_the_raised_gate_asks_scifact_test_for_074(tmp_path):
    from importlib import util

    spec = util.spec_from_file_location("ship_default", ROOT / "benchmarks" / "ship_default.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = results({"a/dev": 0.70, "b/dev": 0.70, "c/dev": 0.72}, test=0.76)
    data["nDCG@10"]["teacher"] = {k: 0.6 for k in data["nDCG@10"][FREE]}
    assert module.gate_failures(data, "m", "teacher") == []
    data["nDCG@10"]["m + features (LODO)"]["scifact/test"] = 0.7395
    data["nDCG@10"]["first stage"]["scifact/test"] = 0.70
    assert module.gate_failures(data, "m", "teacher") == ["scifact/test: 0.7395 below 0.74"]
