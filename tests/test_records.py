import json

import pytest

from rerank_pipeline.io import InvalidInputError, read_records
from conftest import write_jsonl


def test_common_jsonl_shapes(tmp_path):
    pyserini = write_jsonl(tmp_path / "a.jsonl", [{"id": "d1", "contents": "red shoes"}])
    beir = write_jsonl(tmp_path / "b.jsonl", [{"_id": "d1", "title": "Shoes", "text": "red shoes"}])
    plain = write_jsonl(tmp_path / "c.jsonl", [{"id": 7, "text": "red shoes"}])
    assert [(r.id, r.text) for r in read_records(pyserini).records] == [("d1", "red shoes")]
    assert [(r.id, r.text) for r in read_records(beir).records] == [("d1", "Shoes red shoes")]
    assert [(r.id, r.text) for r in read_records(plain).records] == [("7", "red shoes")]


def test_field_overrides_and_delimited_and_parquet(tmp_path):
    custom = write_jsonl(tmp_path / "c.jsonl", [{"sku": "x1", "name": "blue hat", "text": "ignored"}])
    rs = read_records(custom, id_field="sku", text_field="name")
    assert [(r.id, r.text) for r in rs.records] == [("x1", "blue hat")]
    (tmp_path / "c.tsv").write_text("id\ttext\nd1\tgreen scarf\nd2\twool socks\n")
    (tmp_path / "c.csv").write_text('id,title,text\nd1,Scarf,"green, warm"\n')
    assert [r.text for r in read_records(tmp_path / "c.tsv").records] == ["green scarf", "wool socks"]
    assert [r.text for r in read_records(tmp_path / "c.csv").records] == ["Scarf green, warm"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["tent", "stove"]}), tmp_path / "c.parquet")
    assert [r.id for r in read_records(tmp_path / "c.parquet").records] == ["p1", "p2"]


def test_every_problem_reported_with_file_line_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"id": "d1", "text": "fine"}),           # 1
        '{"id": "d2", "text": "unterminated',               # 2 malformed JSON
        json.dumps({"text": "no id"}),                      # 3 missing id
        json.dumps({"id": "d1", "text": "again"}),          # 4 duplicate id
        json.dumps({"id": "d5", "text": "   "}),            # 5 empty text
        json.dumps({"id": ["x"], "text": "list id"}),       # 6 wrong id type
        json.dumps({"id": "d7", "text": 42}),               # 7 wrong text type
        json.dumps(["not", "an", "object"]),                # 8 not an object
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "d9", "text": "caf\xe9"}\n')  # 9 bad UTF-8
    with pytest.raises(InvalidInputError) as exc:
        read_records(path)
    got = {(p.line, p.field): p.message for p in exc.value.problems}
    assert set(got) == {(2, ""), (3, "_id/id"), (4, "id"), (5, "text"), (6, "id"), (7, "text"), (8, ""), (9, "")}
    assert "malformed JSON" in got[(2, "")]
    assert "duplicate id 'd1' (first on line 1)" in got[(4, "id")]
    assert "empty text" in got[(5, "text")]
    assert "invalid UTF-8" in got[(9, "")]
    assert f"{path}:4: field 'id'" in str(exc.value)


def test_skip_invalid_keeps_valid_records(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [{"id": "a", "text": "ok"}, "{broken", {"id": "b", "text": ""},
                                                  {"id": "c", "text": "also ok"}])
    rs = read_records(path, skip_invalid=True)
    assert [r.id for r in rs.records] == ["a", "c"]
    assert [p.line for p in rs.skipped] == [2, 3]


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InvalidInputError, match="empty file"):
        read_records(tmp_path / "empty.jsonl")
    with pytest.raises(InvalidInputError, match="file not found"):
        read_records(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidInputError, match="allbad.jsonl:1: malformed JSON"):
        read_records(write_jsonl(tmp_path / "allbad.jsonl", ["{x"]), skip_invalid=True)


def test_ms_marco_tsv_and_compressed_inputs(tmp_path):
    import gzip

    import zstandard

    collection = "0\tThe presence of communication amid scientific minds\n1\tThe Manhattan Project\n"
    (tmp_path / "collection.tsv").write_text(collection)
    rs = read_records(tmp_path / "collection.tsv")
    assert [(r.id, r.text, r.line) for r in rs.records] == [
        ("0", "The presence of communication amid scientific minds", 1), ("1", "The Manhattan Project", 2)]
    (tmp_path / "queries.tsv").write_text("qid\tquery\n7\twhat was the manhattan project\n")  # a header stays one
    assert [(r.id, r.text) for r in read_records(tmp_path / "queries.tsv").records] == [
        ("7", "what was the manhattan project")]
    (tmp_path / "named.tsv").write_text("pid\tpassage\n3\tsome text\n")  # a header the caller names
    assert [r.id for r in read_records(tmp_path / "named.tsv", id_field="pid", text_field="passage").records] == ["3"]
    rows = "".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(3)).encode()
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(rows))
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(rows))
    (tmp_path / "collection.tsv.zst").write_bytes(zstandard.ZstdCompressor().compress(collection.encode()))
    assert [r.id for r in read_records(tmp_path / "c.jsonl.zst").records] == ["d0", "d1", "d2"]
    assert read_records(tmp_path / "c.jsonl.zst").records == read_records(tmp_path / "c.jsonl.gz").records
    assert len(read_records(tmp_path / "collection.tsv.zst").records) == 2
    (tmp_path / "bad.tsv").write_text("0\tfine\n1\n")
    with pytest.raises(InvalidInputError, match="bad.tsv:2: field 'text'"):
        read_records(tmp_path / "bad.tsv")


def test_a_control_character_is_reported_once_with_its_column(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": "bad\x01"}\n')
    with pytest.raises(InvalidInputError) as e:
        read_records(path)
    assert str(e.value).endswith("c.jsonl:2: malformed JSON: Invalid control character at column 25")


def test_a_record_with_only_a_title_is_indexed_from_it_and_said_so(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "title": "Patagonia Tokyo"}\n{"id": "b", "title": "x", "text": "y"}\n')
    with pytest.warns(UserWarning, match=r"1 corpus record\(s\) have a 'title' and no text field"):
        records = read_records(path)
    assert [r.text for r in records.records] == ["Patagonia Tokyo", "x y"] and records.title_only == 1
