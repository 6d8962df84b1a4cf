"""Ray: an index encoded on Ray actors equals the local build; a run reranked on actors equals the local rerank;
shards resume. Ray runs locally here (2 CPUs); the README says how to point it at a cluster."""
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_index_encoded_on_ray_equals_local(tmp_path, monkeypatch):
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import build, build_index

    monkeypatch.setattr(build, "ENCODE_CHUNK", 50)  # several chunks, so actors share the work
    corpus = write_demo_corpus(tmp_path / "demo.jsonl")
    local, _ = build_index(corpus, "local", tmp_path, bm25=False, show_progress=False)
    remote, _ = build_index(corpus, "remote", tmp_path, bm25=False, show_progress=False, ray="local")
    a = np.load(local.path / "dense" / "embeddings.npy")
    b = np.load(remote.path / "dense" / "embeddings.npy")
    assert a.shape == b.shape and len(a) > 100
    np.testing.assert_allclose(a, b, atol=1e-6)
    queries = {"q1": "patagonia japan", "q2": "surf shop"}
    assert local.dense(10).transform(queries).to_dict() == remote.dense(10).transform(queries).to_dict()


def read_scores(path):
    return {(line.split()[0], line.split()[2]): float(line.split()[4]) for line in path.read_text().splitlines()}


def test_rerank_batch_on_ray_equals_local_and_resumes(demo_index, tiny_encoder, tmp_path):
    from rerank_pipeline.distributed import rerank_run_file
    from rerank_pipeline.rerankers import PointwiseCrossEncoder

    model = tmp_path / "model"
    PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu").save(model)
    queries = {f"q{i}": q for i, q in enumerate(["patagonia japan", "surf shop", "tokyo store", "fleece", "repair"])}
    run = demo_index.bm25(20).transform(queries)
    texts = demo_index.docstore.texts
    here = rerank_run_file(run, queries, texts, str(model), tmp_path / "here.trec", shard_queries=2,
                           show_progress=False)
    there = rerank_run_file(run, queries, texts, str(model), tmp_path / "there.trec", shard_queries=2, ray="local",
                            show_progress=False)
    # same lists, same scores: Ray's actors run torch on one thread, so a sum may round in its last digit
    local_run, ray_run = (read_scores(path) for path in (here, there))
    assert local_run.keys() == ray_run.keys()
    np.testing.assert_allclose([ray_run[k] for k in local_run], list(local_run.values()), atol=2e-6)
    assert len(here.read_text().splitlines()) == sum(len(run[q]) for q in run) > 20
    shards = tmp_path / "again.trec.shards"
    shards.mkdir()
    (shards / "00000.trec").write_text("KEPT\n")                                 # a shard finished earlier
    again = rerank_run_file(run, queries, texts, str(model), tmp_path / "again.trec", shard_queries=2,
                            show_progress=False)
    assert again.read_text().startswith("KEPT\n") and not shards.exists()
    with pytest.raises(ValueError, match="not in the document source"):
        rerank_run_file(run, queries, lambda ids: [{}[i] for i in ids], str(model), tmp_path / "x.trec",
                        show_progress=False)


def test_rerank_batch_cli(demo_index, tiny_encoder, tmp_path):
    from typer.testing import CliRunner

    from conftest import write_jsonl
    from rerank_cli.main import app
    from rerank_pipeline.io import read_run
    from rerank_pipeline.rerankers import PointwiseCrossEncoder

    model = tmp_path / "model"
    PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu").save(model)
    queries = write_jsonl(tmp_path / "q.jsonl", [{"id": "q1", "text": "patagonia japan"}, {"id": "q2", "text": "surf"}])
    demo_index.bm25(15).transform({"q1": "patagonia japan", "q2": "surf"}).write_trec(tmp_path / "cand.trec")
    runner = CliRunner()
    args = ["rerank-batch", str(tmp_path / "cand.trec"), "--queries", str(queries), "--model", str(model),
            "--index", demo_index.name, "--index-dir", str(demo_index.path.parent), "-o", str(tmp_path / "out.trec")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out, cand = read_run(tmp_path / "out.trec"), read_run(tmp_path / "cand.trec")
    assert {q: {h.docid for h in out[q]} for q in out} == {q: {h.docid for h in cand[q]} for q in cand}
    result = runner.invoke(app, args[:6] + ["-o", str(tmp_path / "x.trec")])             # no document source
    assert result.exit_code == 2 and "--index NAME or --corpus FILE" in result.output
