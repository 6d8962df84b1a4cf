"""Property-based tests of the surfaces users type into: `rerank search` arguments and the HTTP parameters of
`rerank serve`. Whatever comes in, the answer is a result or a clear refusal (exit 2 / a 4xx with a JSON body),
never a traceback or a 500."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rerank_cli.main import app as cli
from rerank_pipeline import BM25

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                          lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory):
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import build_index

    root = tmp_path_factory.mktemp("prop")
    return build_index(write_demo_corpus(root / "c.jsonl"), "p", root, dense=False, show_progress=False)[0]


@pytest.fixture(scope="module")
def client(bm25_index, tmp_path_factory):
    from fastapi.testclient import TestClient

    from rerank_pipeline.serving import Limits, create_app
    from rerank_pipeline.serving.clicklog import SQLiteClickLog

    log = SQLiteClickLog(tmp_path_factory.mktemp("log") / "clicks.sqlite")
    with TestClient(create_app(bm25_index, {"A": BM25(bm25_index, 100)}, limits=Limits(), click_log=log)) as c:
        yield c


def assert_clean(response):
    assert response.status_code < 500, response.text
    body = response.json()
    assert isinstance(body, dict)
    if response.status_code >= 400:
        assert "detail" in body


@SETTINGS
@given(q=text, k=st.one_of(st.integers(-10**6, 10**6), text), session=text)
def test_get_search_never_500s(client, q, k, session):
    assert_clean(client.get("/search", params={"q": q, "k": k, "session": session}))


@SETTINGS
@given(body=json_value)
def test_post_endpoints_never_500(client, body):
    for path in ("/search", "/click", "/return"):
        assert_clean(client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}))


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_post_garbage_bytes(client, raw):
    assert_clean(client.post("/search", content=raw, headers={"content-type": "application/json"}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=text, k=st.one_of(st.integers(-5, 20000), text.filter(lambda s: not s.startswith("-"))),
       flag=st.sampled_from([[], ["--json"], ["--no-rerank"], ["--interpolate", "1.5"], ["--interpolate", "x"]]))
def test_cli_search_arguments(bm25_index, query, k, flag):
    argv = ["search", query, "-i", "p", "--index-dir", str(bm25_index.path.parent), "-k", str(k),
            "--config", "configs/bm25-only.yaml", *flag]
    result = CliRunner().invoke(cli, argv, env={"COLUMNS": "200"})
    assert result.exit_code in (0, 2), (argv, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (argv, result.exception)
