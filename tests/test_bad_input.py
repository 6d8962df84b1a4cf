"""Malformed input across every kind of file the CLI reads: each gets a one-line error naming file, line and field,
exit code 2, no traceback, and nothing already on disk changes. Valid but unusual encodings are read correctly."""
import gzip
import hashlib
import json

import pytest
from typer.testing import CliRunner

from rerank_cli.main import app
from rerank_pipeline.io import read_records
from conftest import write_jsonl

runner = CliRunner()
GOOD = [{"id": "a", "text": "red shoes"}, {"id": "b", "text": "blue hat"}, {"id": "c", "text": "green scarf"}]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with one valid BM25 index ('x') whose files must survive every failed command."""
    from rerank_pipeline.index import build_index

    root = tmp_path_factory.mktemp("bad")
    build_index(write_jsonl(root / "good.jsonl", GOOD), "x", root / "ix", dense=False, show_progress=False)
    (root / "ds" / "qrels").mkdir(parents=True)
    write_jsonl(root / "ds" / "corpus.jsonl", GOOD)
    write_jsonl(root / "ds" / "queries.jsonl", [{"_id": "q1", "text": "red"}])
    (root / "ds" / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\n")
    return root


def snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# (name, files to write {name: content}, argv with {ws}, expected in the error)
CASES = [
    ("malformed json", {"c.jsonl": '{"id": "a", "text": "x"}\n{oops\n'}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:2: malformed JSON"),
    ("missing id", {"c.jsonl": '{"text": "x"}\n'}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:1: field '_id/id': missing id"),
    ("duplicate id", {"c.jsonl": '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n'}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:2: field 'id': duplicate id"),
    ("text not a string", {"c.jsonl": '{"id": "a", "text": 7}\n'}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:1: field 'text': must be a string"),
    ("id not a string", {"c.jsonl": '{"id": [1], "text": "x"}\n'}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:1: field 'id': id must be a string"),
    ("empty text", {"c.jsonl": '{"id": "a", "text": "  "}\n'}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:1: field 'text': empty text"),
    ("invalid utf-8", {"c.jsonl": b'{"id": "a", "text": "\xff\xfe"}\n'}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:1: invalid UTF-8"),
    ("huge field", {"c.jsonl": json.dumps({"id": "a", "text": "x" * 1_000_001}) + "\n"}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl:1: field 'text': 1000001 characters"),
    ("empty file", {"c.jsonl": ""}, ["index", "{ws}/c.jsonl", "-n", "x"], "c.jsonl: empty file"),
    ("missing corpus", {}, ["index", "{ws}/nope.jsonl", "-n", "x"], "nope.jsonl: file not found"),
    ("unknown format", {"c.xml": "<doc/>"}, ["index", "{ws}/c.xml", "-n", "x"], "c.xml: unknown format '.xml'"),
    ("tsv extra column", {"c.tsv": "id\ttext\na\tx\ty\n"}, ["index", "{ws}/c.tsv", "-n", "x"], "c.tsv:2: more columns than the header"),
    ("index name with ..", {}, ["index", "{ws}/good.jsonl", "-n", "../evil"], "invalid index name '../evil'"),
    ("index name with /", {}, ["index", "{ws}/good.jsonl", "-n", "a/b"], "invalid index name 'a/b'"),
    ("queries missing text", {"q.jsonl": '{"_id": "1"}\n'}, ["search", "--queries", "{ws}/q.jsonl", "-o", "{ws}/out.trec", "-i", "x", "--no-rerank"], "q.jsonl:1: field 'contents/text': empty text"),
    ("run line", {"r.trec": "q1 Q0 a 1 high x\n"}, ["eval", "{ws}/ds", "--split", "dev", "--run", "{ws}/r.trec"], "r.trec:1: not a run line"),
    ("qrels line", {"ds2/qrels/dev.tsv": "query-id\tcorpus-id\tscore\nq1\ta\n"}, ["eval", "{ws}/ds2", "--split", "dev", "--run", "{ws}/good.trec"], "dev.tsv:2"),
    ("yaml syntax", {"c.yaml": "retrievers: [\n"}, ["search", "red", "-i", "x", "--config", "{ws}/c.yaml"], "c.yaml: invalid YAML"),
    ("unknown stage", {"c.yaml": "retrievers: [{type: splade}]\n"}, ["search", "red", "-i", "x", "--config", "{ws}/c.yaml"], "c.yaml: retrievers[0].type must be"),
    ("bad interpolate", {"c.yaml": "retrievers: [{type: bm25}]\nreranker: {type: crossjem, interpolate: 2}\n"}, ["search", "red", "-i", "x", "--config", "{ws}/c.yaml"], "reranker.interpolate must be"),
    ("k not an int", {"c.yaml": "retrievers: [{type: bm25, k: ten}]\n"}, ["search", "red", "-i", "x", "--config", "{ws}/c.yaml"], "retrievers[0].k: must be a positive integer"),
    ("missing config", {}, ["search", "red", "-i", "x", "--config", "{ws}/none.yaml"], "none.yaml: config file not found"),
    ("model dir without config", {"m/model.safetensors": b"\0"}, ["eval", "{ws}/ds", "--split", "dev", "--rerank-run", "{ws}/good.trec", "--reranker", "{ws}/m"], "is not a reranker model directory"),
    ("truncated safetensors", {"t/rerank_config.json": '{"kind": "crossjem"}', "t/config.json": "{}", "t/model.safetensors": b"\x10\x00\x00"}, ["eval", "{ws}/ds", "--split", "dev", "--rerank-run", "{ws}/good.trec", "--reranker", "{ws}/t"], "model.safetensors: not a readable safetensors file"),
    ("training lists", {"l.jsonl": '{"query": "x", "candidates": [{"label": 1}]}\n'}, ["distill", "--data", "{ws}/l.jsonl", "-o", "{ws}/o.jsonl"], "l.jsonl:1: field 'text'"),
    ("missing index", {}, ["search", "red", "-i", "nope"], "no index at"),
]


@pytest.mark.parametrize("name,files,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_gets_one_clear_line(ws, name, files, argv, expected):
    write(ws / "good.trec", "q1 Q0 a 1 1.0 x\n")
    for rel, content in files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        write(ws / rel, content)
    for rel in ("ds2/corpus.jsonl", "ds2/queries.jsonl"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes((ws / "ds" / rel.split("/")[1]).read_bytes())
    before = snapshot(ws / "ix")
    result = runner.invoke(app, [a.replace("{ws}", str(ws)) for a in argv] + (["--index-dir", str(ws / "ix")] if argv[0] in ("index", "search") else []),
                           env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert any(expected in l for l in lines), result.output
    assert snapshot(ws / "ix") == before


def test_unusual_but_valid_encodings(tmp_path):
    rows = [{"id": "a", "text": "héllo"}, {"id": "b", "text": "wörld"}]
    body = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    bom = write(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + body.encode())
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress(body.encode()))
    tsv = write(tmp_path / "c.tsv", b"\xef\xbb\xbfid\ttext\r\na\th\xc3\xa9llo\r\nb\tw\xc3\xb6rld\r\n")
    for path in (bom, gz, tsv):
        assert [(r.id, r.text) for r in read_records(path).records] == [("a", "héllo"), ("b", "wörld")], path
