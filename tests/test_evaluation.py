import json

import numpy as np
import pytest
import pytrec_eval
from typer.testing import CliRunner

from rerank_pipeline.evaluation import EvaluationError, compare, experiment, holm, randomization_test
from rerank_pipeline.io import read_qrels, read_run
from rerank_pipeline.types import Hit, Run
from rerank_cli.main import app
from conftest import shared_dataset


def test_dl19_runs_match_anserini_and_trec_eval():
    data = shared_dataset("trec-dl19")
    qrels = read_qrels(data / "qrels" / "test.tsv")
    runs = {name: read_run(data / "runs" / f"{name}.test.trec") for name in ("bm25", "splade-pp")}
    result = compare(runs, qrels, ["nDCG@10", "AP", "RR@10"])
    assert result.table.loc["bm25", "nDCG@10"] == pytest.approx(0.5058, abs=5e-5)
    assert result.table.loc["splade-pp", "nDCG@10"] == pytest.approx(0.7308, abs=5e-5)
    # Independent check: trec_eval's own code through pytrec_eval, per query and averaged.
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map"})
    direct = evaluator.evaluate(runs["splade-pp"].to_dict())
    ours = result.per_query["splade-pp"]
    for qid, values in direct.items():
        assert ours.loc[qid, "nDCG@10"] == pytest.approx(values["ndcg_cut_10"], abs=1e-9)
        assert ours.loc[qid, "AP"] == pytest.approx(values["map"], abs=1e-9)
    assert result.table.loc["splade-pp", "nDCG@10 p(rand)"] < 0.01


def test_ties_follow_trec_eval(tmp_path):
    # Equal scores: trec_eval ranks the larger doc id first, so the relevant 'a' is second.
    run = Run({"q": [Hit("a", 1.0), Hit("b", 1.0)]})
    assert [h.docid for h in run["q"]] == ["b", "a"]
    qrels = {"q": {"a": 1}}
    ours = compare({"r": run}, qrels, ["P@1", "RR"]).table.loc["r"]
    direct = pytrec_eval.RelevanceEvaluator(qrels, {"P_1", "recip_rank"}).evaluate(run.to_dict())["q"]
    assert ours["P@1"] == direct["P_1"] == 0.0 and ours["RR"] == direct["recip_rank"] == 0.5
    run.write_trec(tmp_path / "r.trec")
    assert [line.split()[2] for line in (tmp_path / "r.trec").read_text().splitlines()] == ["b", "a"]


def test_judged_only_is_explicit():
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}
    run = Run({"q1": [Hit("a", 2.0)], "q2": [Hit("b", 1.0)]})
    assert compare({"r": run}, qrels, ["AP"]).table.loc["r", "AP"] == pytest.approx(0.5)
    judged = compare({"r": run}, qrels, ["AP"], judged_only=True)
    assert judged.table.loc["r", "AP"] == 1.0 and "1 of 2 queries" in judged.notes[0]


def test_errors():
    qrels = {"q1": {"a": 1}}
    with pytest.raises(EvaluationError, match="no query id of the run is in the qrels"):
        compare({"r": Run({"zz": [Hit("a", 1.0)]})}, qrels, ["AP"])
    with pytest.raises(EvaluationError, match="empty"):
        compare({"r": Run({"q1": []})}, qrels, ["AP"])
    with pytest.raises(EvaluationError, match="unknown metric 'nDCG@ten'"):
        compare({"r": Run({"q1": [Hit("a", 1.0)]})}, qrels, ["nDCG@ten"])


def test_holm_and_randomization():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    rng = np.random.default_rng(0)
    a = rng.random(50)
    assert randomization_test(a, a) == 1.0
    assert randomization_test(a + 0.2, a, trials=2000) < 0.001
    from scipy.stats import ttest_rel

    for shift in (0.0, 0.05, 0.1):  # the randomization test agrees with the paired t-test on well-behaved data
        b = a + shift + rng.normal(0, 0.3, 50)
        assert randomization_test(a, b, trials=5000) == pytest.approx(ttest_rel(a, b).pvalue, abs=0.05)


def test_experiment_has_a_row_per_stage(demo_index):
    from rerank_pipeline import BM25, Dense

    qrels = {"1": {"demo-0004": 1, "demo-0006": 1}, "2": {"demo-0013": 2}}
    queries = {"1": "patagonia japan", "2": "oaxaca food"}
    pipe = (BM25(demo_index, 50) | Dense(demo_index, 50)) % 20
    result = experiment([pipe], queries, qrels, ["nDCG@10", "R@20"])
    assert list(result.table.index) == ["bm25", "dense", pipe.name]
    assert (result.table["nDCG@10"] > 0.5).all()


def test_cli_eval_writes_reports(tmp_path):
    data = shared_dataset("trec-dl19")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["eval", str(data), "--split", "test", "--run", str(data / "runs" / "bm25.test.trec"),
                                      "--run", str(data / "runs" / "tasb.test.trec"), "-m", "nDCG@10", "-m", "AP",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "0.5058" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["systems"]["bm25.test"]["nDCG@10"] == pytest.approx(0.5058, abs=5e-5)
    assert (out / "metric_per_system.png").stat().st_size > 1000
    assert len(list((out / "runs").glob("*.trec"))) == 2 and (out / "per_query.csv").is_file()
    bad = CliRunner().invoke(app, ["eval", str(data), "--split", "dev", "--run", str(data / "runs" / "bm25.test.trec")])
    assert bad.exit_code == 2 and "no split 'dev' (have: test)" in bad.output


def test_cli_eval_keeps_empty_documents_and_queries(tmp_path, tiny_encoder):
    """A dataset with an empty document and an empty query is evaluated, with warnings, instead of refused."""
    from conftest import write_jsonl
    from rerank_pipeline.rerankers import CrossJEM

    CrossJEM.from_encoder(tiny_encoder, device="cpu").save(tmp_path / "model")
    data = tmp_path / "set"
    (data / "qrels").mkdir(parents=True)
    write_jsonl(data / "corpus.jsonl", [{"_id": "d1", "text": "red shoes"}, {"_id": "d2", "text": ""},
                                        {"_id": "d3", "text": "blue hat"}])
    write_jsonl(data / "queries.jsonl", [{"_id": "q1", "text": "red shoes"}, {"_id": "q2", "text": " "}])
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    (data / "cands.trec").write_text("q1 Q0 d2 1 3 x\nq1 Q0 d1 2 2 x\nq1 Q0 d3 3 1 x\nq2 Q0 d3 1 1 x\n")
    with pytest.warns(UserWarning, match="1 corpus record"):
        result = CliRunner().invoke(app, ["eval", str(data), "--split", "dev", "--rerank-run", str(data / "cands.trec"),
                                          "--reranker", str(tmp_path / "model"), "-m", "RR"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cands >> crossjem" in result.output


def test_cli_eval_adapts_the_default_config_to_a_bm25_only_index(tmp_path):
    from rerank_pipeline.index import build_index

    data = shared_dataset("cacm")
    build_index(data / "corpus.jsonl", "cacm", tmp_path, dense=False, show_progress=False)
    # Eight of CACM's queries: the shipped reranker encodes the dense feature on the fly without a dense index.
    subset = tmp_path / "cacm8"
    (subset / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (subset / name).symlink_to(data / name)
    lines = (data / "qrels" / "test.tsv").read_text().splitlines()
    keep = sorted({line.split("\t")[0] for line in lines[1:]})[:8]
    (subset / "qrels" / "test.tsv").write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.split("\t")[0] in keep]))
    result = CliRunner().invoke(app, ["eval", str(subset), "--split", "test", "--index", "cacm", "--index-dir",
                                      str(tmp_path), "-m", "nDCG@10", "--no-per-stage", "-o", str(tmp_path / "out")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    (system,) = json.loads((tmp_path / "out" / "report.json").read_text())["systems"]
    first_stage = system.split(" >> ")[0]
    assert first_stage.startswith("bm25") and "dense" not in first_stage  # no dense retriever on a BM25-only index
