import numpy as np
import pytest
import torch

from rerank_pipeline.rerankers import CrossJEM, PointwiseCrossEncoder, Reranker
from rerank_pipeline.rerankers.crossjem.packing import Group, collate, group_candidates, pack
from conftest import patagonia_in_japan

CLS, SEP = 101, 102


def ids(*xs):
    return np.array(xs, dtype=np.int64)


def build_group(query, query_ids, items, members, cls_id, sep_id) -> Group:
    """One group laid out plainly with numpy (Algorithm 2's sorted union, Algorithm 1's mask): the reference the
    compiled `pack` is checked against."""
    lens = np.array([len(items[i]) for i in members])
    toks = np.concatenate([items[i] for i in members]) if len(members) else np.zeros(0, np.int64)
    union, inverse = np.unique(toks, return_inverse=True)
    rows = np.repeat(np.arange(len(members)), lens)
    token_pos = np.arange(len(toks)) - np.repeat(np.cumsum(lens) - lens, lens)
    _, first = np.unique(rows * (len(union) + 1) + inverse, return_index=True)  # first occurrence per item
    n_query = len(query_ids) + 2
    input_ids = np.concatenate([[cls_id], query_ids, [sep_id], union]).astype(np.int64)
    return Group(query, members, input_ids, n_query, rows[first], inverse[first] + n_query, token_pos[first])


def test_group_input_and_pooling_matrix_follow_algorithms_1_and_2():
    items = [ids(30, 10, 20), ids(20, 40, 20), ids(50)]
    g = build_group(0, ids(7, 8), items, np.arange(3), CLS, SEP)
    assert g.input_ids.tolist() == [CLS, 7, 8, SEP, 10, 20, 30, 40, 50]  # [CLS] q [SEP] sorted union
    batch = collate([g], offsets=[5])
    cols, items, pos = batch.tok_col, batch.tok_item, batch.tok_pos
    query_part = set(range(1, int(batch.n_query[0])))
    selected = [query_part | set(cols[items == j].tolist()) for j in range(3)]
    # query tokens (1, 2) and [SEP] (3), not [CLS] (0), plus each item's union positions; repeats pooled once
    assert selected == [{1, 2, 3, 4, 5, 6}, {1, 2, 3, 5, 7}, {1, 2, 3, 8}]
    assert len(cols) == len(set(zip(items.tolist(), cols.tolist())))
    assert batch.token_type_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    # Appendix F positions: item 1 = (20, 40, 20): token 20 first at position 0, token 40 at 1
    assert sorted(pos[items == 1].tolist()) == [0, 1]
    # every candidate's slot in the padded logits and its place in the call's flat output (offset 5 for query 0)
    assert batch.slot.tolist() == [0, 1, 2] and batch.target.tolist() == [5, 6, 7]


def test_grouping_respects_capacity_and_uses_overlap():
    rng = np.random.default_rng(0)
    # Two topics with disjoint vocabularies, interleaved in list order.
    items = [rng.choice(np.arange(1000, 1040) if i % 2 else np.arange(2000, 2040), 6, replace=False)
             for i in range(40)]
    groups = group_candidates(items, capacity=45)
    assert sorted(np.concatenate(groups).tolist()) == list(range(40))
    assert all(len(set(np.concatenate([items[i] for i in g]).tolist())) <= 45 for g in groups)
    assert len(groups) == 2  # one group per topic; splitting in list order would mix vocabularies
    assert {i % 2 for i in groups[0]} in ({0}, {1})


@pytest.fixture(scope="module")
def crossjem(tiny_encoder):
    torch.manual_seed(1)
    return CrossJEM.from_encoder(tiny_encoder, device="cpu")


def test_joint_scores_equal_explicit_selective_mean(crossjem):
    q = crossjem.tokenize_queries(["patagonia japan"])[0]
    docs = ["patagonia store tokyo japan", "flights to lima", "japan rail pass"]
    items = [np.asarray(t) for t in crossjem.tokenizer(docs, add_special_tokens=False)["input_ids"]]
    scores = crossjem.score_ids([q], [items])[0]
    g = build_group(0, q, items, np.arange(3), CLS, SEP)
    with torch.inference_mode():
        hidden = crossjem.network.encoder(input_ids=torch.tensor([g.input_ids]),
                                          token_type_ids=torch.tensor([[0] * g.n_query + [1] * (len(g.input_ids) - g.n_query)])
                                          ).last_hidden_state[0]
        for j, item in enumerate(items):
            positions = list(range(1, g.n_query)) + [g.n_query + int(np.searchsorted(g.input_ids[g.n_query:], t))
                                                     for t in np.unique(item)]
            manual = crossjem.network.head(hidden[positions].mean(0)).item()
            assert scores[j] == pytest.approx(manual, abs=1e-5)


def test_batched_groups_match_single_groups_and_large_lists(crossjem):
    rng = np.random.default_rng(1)
    queries = [rng.integers(1000, 5000, 5) for _ in range(3)]
    lists = [[rng.integers(1000, 3000, rng.integers(3, 12)) for _ in range(n)] for n in (5, 40, 2000)]
    crossjem.config["union_capacity"] = 64
    try:
        together = crossjem.score_ids(queries, lists)
        alone = [crossjem.score_ids([q], [l])[0] for q, l in zip(queries, lists)]
        for a, b in zip(together, alone):
            np.testing.assert_allclose(a, b, atol=1e-5)
        assert len(together[2]) == 2000 and np.isfinite(together[2]).all()
        assert len(pack(queries[2:], lists[2:], 64, CLS, SEP)) > 30  # 2000 items really span many passes
    finally:
        crossjem.config["union_capacity"] = CrossJEM.defaults["union_capacity"]


def test_position_encoding_separates_reordered_items(tiny_encoder):
    torch.manual_seed(2)
    plain = CrossJEM.from_encoder(tiny_encoder, device="cpu")
    torch.manual_seed(2)
    positional = CrossJEM.from_encoder(tiny_encoder, device="cpu", position_encoding=True)
    q = plain.tokenize_queries(["dog bites man"])[0]
    items = [ids(3899, 15424, 2158), ids(2158, 15424, 3899)]  # same bag of tokens, other order
    a, b = plain.score_ids([q], [items])[0]
    assert a == pytest.approx(b, abs=1e-6)  # bags: order is invisible
    a, b = positional.score_ids([q], [items])[0]
    assert abs(a - b) > 1e-4


def test_save_load_roundtrip_safetensors_only(crossjem, tmp_path, tiny_encoder):
    q = crossjem.tokenize_queries(["red shoes"])
    items = [[ids(2417, 6007), ids(2630, 3797), ids(2417)]]
    before = crossjem.score_ids(q, items)[0]
    crossjem.save(tmp_path / "m32")
    crossjem.save(tmp_path / "m16", fp16=True)
    assert not list(tmp_path.glob("m32/*.bin")) and (tmp_path / "m32" / "model.safetensors").is_file()
    np.testing.assert_allclose(Reranker.load(tmp_path / "m32", device="cpu").score_ids(q, items)[0], before, atol=1e-6)
    np.testing.assert_allclose(CrossJEM.load(tmp_path / "m16", device="cpu").score_ids(q, items)[0], before, atol=2e-2)
    with pytest.raises(ValueError, match="crossjem"):
        PointwiseCrossEncoder.load(tmp_path / "m32")


def test_rerank_a_run_from_python(crossjem):
    from rerank_pipeline.types import Hit, Run

    run = Run({"q1": [Hit("a", 2.0), Hit("b", 1.0)], "q2": [Hit("c", 5.0)]})
    out = crossjem.rerank({"q1": "red shoes", "q2": "blue hat"}, run,
                          docs={"a": "green socks", "b": "red shoes", "c": "blue hat"})
    assert set(out) == {"q1", "q2"} and {h.docid for h in out["q1"]} == {"a", "b"}
    with pytest.raises(ValueError, match="needs candidates"):
        crossjem.transform({"q": "x"}, None)


def test_pointwise_scores_pairs_independently(tiny_encoder):
    torch.manual_seed(3)
    pw = PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu")
    q = pw.tokenize_queries(["red shoes"])
    items = [ids(2417, 6007), ids(2630, 3797, 1010, 2000), ids(2417)]
    together = pw.score_ids(q, [items])[0]
    alone = [pw.score_ids(q, [[it]])[0][0] for it in items]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_reranker_reuses_index_token_ids(demo_index, crossjem, monkeypatch):
    """The docstore's ids (tokenized at index time) are used as they are: no tokenization per search."""
    from rerank_pipeline import BM25

    run = BM25(demo_index, 20).search(["patagonia japan"])
    expected = crossjem.transform({"1": "patagonia japan"}, run)
    monkeypatch.setattr(type(demo_index.docstore), "texts", lambda *a: pytest.fail("re-tokenized stored docs"))
    again = crossjem.transform({"1": "patagonia japan"}, run)
    assert [h.docid for h in again["1"]] == [h.docid for h in expected["1"]]


def test_bench_command_reports_every_model(tmp_path):
    from typer.testing import CliRunner

    from rerank_cli.main import app

    out = tmp_path / "bench.md"
    result = CliRunner().invoke(app, ["bench", "-n", "30", "--queries", "1", "--repeats", "1", "--device", "cpu",
                                      "-o", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = out.read_text().splitlines()[4].split("|")[:3] + out.read_text().splitlines()[4].split("|")[4:]
    assert out.read_text().splitlines()[4].split("|")[3].strip() == "torch"
    assert row[1].strip() == "30" and float(row[4]) > 0 and float(row[5]) > 0 and row[6].strip().endswith("x")
    assert float(row[7]) > 0 and row[8].strip().endswith("x") and float(row[9]) > 0  # MICE stored / on the fly
    assert float(row[10]) > 0 and float(row[11].replace(",", "")) > 0 and float(row[12].replace(",", "")) > 0
    assert row[13].strip() == row[14].strip() == "-"  # peak device memory: GPU only
    assert 0 < float(row[15].strip().rstrip("%")) < 100
    # the speed-up is over the faster of the two pointwise baselines (ours, sentence-transformers')
    assert float(row[6].strip().rstrip("x")) == pytest.approx(min(float(row[5]), float(row[10])) / float(row[4]), rel=0.05)


def test_default_pipeline_matches_what_ships_and_finds_both_words_first(demo_index):
    """The default config reranks exactly when a model ships (one that passed benchmarks/ship_default.py), and
    `rerank search "patagonia japan"` on the demo index puts documents with both words first."""
    import json

    from typer.testing import CliRunner

    from rerank_cli.main import app
    from rerank_pipeline.config import default_config
    from rerank_pipeline.rerankers import MODELS_DIR, default_spec

    spec = default_spec()
    shipped = spec is not None
    assert ("reranker" in default_config()) == shipped
    for weights in MODELS_DIR.glob("*/model.safetensors"):  # what ships inside the package stays small
        assert weights.stat().st_size < 50 * 2**20
    result = CliRunner().invoke(app, ["search", "patagonia japan", "--index-dir", str(demo_index.path.parent),
                                      "--json", "-k", "5"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (spec["type"] in payload["pipeline"].split(">>")[-1]) == shipped  # reranked by the shipped model
    # Reranked, the top 5 are Patagonia in Japan; "patagonia shibuya tokyo" joins them by the dense feature's weight
    # (it is rank 2 with the gate at 0 too), so the literal pair is asserted for the first result only.
    assert all(patagonia_in_japan(r["text"]) for r in payload["results"][:5])
    assert {"patagonia", "japan"} <= set(payload["results"][0]["text"].lower().split())


def reference_groups(items, capacity):
    """The grouping written plainly with Python sets (the pre-compiled implementation), for comparison."""
    sets = [set(t.tolist()) for t in items]
    if len(set().union(*sets) if sets else set()) <= capacity:
        return [np.arange(len(items))]
    unions, members = [], []
    for i in sorted(range(len(items)), key=lambda i: -len(sets[i])):
        best, best_new = -1, len(sets[i])
        for g, u in enumerate(unions):
            new = len(sets[i] - u)
            if len(u) + new <= capacity and new < best_new:
                best, best_new = g, new
                if new == 0:
                    break
        if best < 0:
            unions.append(set(sets[i]))
            members.append([i])
        else:
            unions[best] |= sets[i]
            members[best].append(i)
    for g in sorted(range(len(unions)), key=lambda g: len(unions[g])):
        if not members[g]:
            continue
        best, best_overlap = -1, -1
        for h in range(len(unions)):
            if h == g or not members[h]:
                continue
            overlap = len(unions[g] & unions[h])
            if overlap > best_overlap and len(unions[g]) + len(unions[h]) - overlap <= capacity:
                best, best_overlap = h, overlap
        if best >= 0:
            unions[best] |= unions[g]
            members[best] += members[g]
            unions[g], members[g] = set(), []
    return [np.array(sorted(m)) for m in members if m]


@pytest.mark.parametrize("seed", range(12))
def test_compiled_grouping_equals_the_plain_algorithm(seed):
    rng = np.random.default_rng(seed)
    n, vocab = int(rng.integers(1, 300)), int(rng.integers(20, 3000))
    items = [rng.integers(0, vocab, int(rng.integers(0, 40))) for _ in range(n)]
    capacity = int(rng.integers(40, 300))
    got, want = group_candidates(items, capacity), reference_groups(items, capacity)
    assert [g.tolist() for g in got] == [g.tolist() for g in want]


def reference_refined(items, capacity):
    """`_refine_groups` in plain Python: from the greedy groups, each item in turn moves to the first group with
    the largest positive gain (tokens only it holds where it is, minus tokens it adds there) that still fits."""
    groups = reference_groups(items, capacity)
    group_of = np.empty(len(items), np.int64)
    for g, members in enumerate(groups):
        group_of[members] = g
    sets = [set(np.asarray(t).tolist()) for t in items]

    def union(g, without=None):
        return set().union(*[sets[i] for i in np.flatnonzero(group_of == g) if i != without])

    for _ in range(20):
        moved = False
        for i in range(len(items)):
            g = group_of[i]
            own = len(sets[i] - union(g, without=i))
            best, best_gain = -1, 0
            for h in range(len(groups)):
                if h != g and (group_of == h).any():
                    new = len(sets[i] - union(h))
                    if len(union(h)) + new <= capacity and own - new > best_gain:
                        best, best_gain = h, own - new
            if best >= 0:
                group_of[i], moved = best, True
        if not moved:
            break
    return [np.flatnonzero(group_of == g) for g in range(len(groups)) if (group_of == g).any()]


@pytest.mark.parametrize("seed", range(8))
def test_refined_grouping_equals_the_plain_local_search_and_shrinks_unions(seed):
    rng = np.random.default_rng(50 + seed)
    n, vocab = int(rng.integers(20, 150)), int(rng.integers(50, 600))
    items = [rng.integers(0, vocab, int(rng.integers(1, 25))) for _ in range(n)]
    capacity = int(rng.integers(40, 120))
    got = group_candidates(items, capacity, refine=True)
    assert [g.tolist() for g in got] == [g.tolist() for g in reference_refined(items, capacity)]
    size = lambda groups: sum(len(set(np.concatenate([items[i] for i in g]).tolist())) for g in groups)  # noqa: E731
    assert all(len(set(np.concatenate([items[i] for i in g]).tolist())) <= capacity for g in got)
    assert size(got) <= size(group_candidates(items, capacity))


def test_long_lists_are_packed_and_scored_chunk_by_chunk(crossjem, monkeypatch):
    rng = np.random.default_rng(7)
    queries = [rng.integers(1000, 1100, 4) for _ in range(2)]
    lists = [[rng.integers(1000, 1300, int(rng.integers(1, 12))) for _ in range(n)] for n in (120, 30)]
    monkeypatch.setattr(crossjem, "chunk_items", 50)
    got = crossjem.score_ids(queries, lists)
    monkeypatch.setattr(crossjem, "chunk_items", 10_000)
    want = [np.concatenate([crossjem.score_ids([q], [l[s:s + 50]])[0] for s in range(0, len(l), 50)])
            for q, l in zip(queries, lists)]  # each chunk of 50 scored as a list of its own
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(got[0], crossjem.score_ids(queries[:1], lists[:1])[0], atol=1e-5)  # chunks did differ


@pytest.mark.parametrize("seed", range(8))
def test_pack_equals_the_plain_layout_of_each_group(seed):
    rng = np.random.default_rng(100 + seed)
    queries = [rng.integers(1000, 2000, int(rng.integers(1, 10))) for _ in range(3)]
    lists = [[rng.integers(2000, 2000 + int(rng.integers(30, 2000)), int(rng.integers(1, 30)))
              for _ in range(int(rng.integers(0, 120)))] for _ in range(3)]
    capacity = int(rng.integers(40, 300))
    got = pack(queries, lists, capacity, CLS, SEP)
    want = [build_group(q, queries[q], lists[q], m, CLS, SEP)
            for q in range(3) if len(lists[q]) for m in reference_groups(lists[q], capacity)]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.query == w.query and g.n_query == w.n_query
        assert g.items.tolist() == w.items.tolist() and g.input_ids.tolist() == w.input_ids.tolist()
        triples = lambda x: sorted(zip(x.item_rows.tolist(), x.item_cols.tolist(), x.item_token_pos.tolist()))  # noqa: E731
        assert triples(g) == triples(w)


def test_pointwise_export_scores_the_same_in_sentence_transformers(tiny_encoder, tmp_path):
    from sentence_transformers import CrossEncoder

    torch.manual_seed(3)
    model = PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu")
    torch.nn.init.normal_(model.network.head.weight)
    model.export_hf(tmp_path / "hf")
    docs = ["patagonia store tokyo japan", "flights to lima", "japan rail pass"]
    ours = [r["score"] for r in sorted(model.rank("patagonia japan", docs), key=lambda r: r["corpus_id"])]
    peer = CrossEncoder(str(tmp_path / "hf"), device="cpu", activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(peer.predict([("patagonia japan", d) for d in docs]), ours, rtol=1e-3, atol=1e-4)


def test_small_lists_pack_in_plain_python_exactly_as_compiled(monkeypatch):
    from rerank_pipeline.rerankers.crossjem import packing

    rng = np.random.default_rng(3)
    queries = [rng.integers(1000, 1100, 4) for _ in range(3)]
    lists = [[rng.integers(1000, 1400, rng.integers(1, 30)) for _ in range(n)] for n in (5, 80, 200)]
    packs = {}
    for threshold in (0, 10 ** 9):  # every list compiled / every list in plain Python
        monkeypatch.setattr(packing, "NUMBA_MIN_TOKENS", threshold)
        packs[threshold] = pack(queries, lists, 64, CLS, SEP, refine=True)
    assert len(packs[0]) == len(packs[10 ** 9]) > 3
    for a, b in zip(packs[0], packs[10 ** 9]):
        assert a.query == b.query and a.n_query == b.n_query
        for field in ("items", "input_ids", "item_rows", "item_cols", "item_token_pos"):
            assert getattr(a, field).tolist() == getattr(b, field).tolist()
