"""Readers and writers: corpora and queries (validated), TREC/BEIR runs and qrels."""
from .records import InvalidInputError, Problem, Record, RecordSet, read_documents, read_records
from .trec import beir_qrels_path, read_qrels, read_run, write_run


def read_queries(path, *, id_field: str | None = None, text_field: str | None = None,
                 allow_empty: bool = False) -> dict[str, str]:
    """Queries from BEIR `{"_id","text"}` / `{"id","text"}` jsonl (or tsv/csv/parquet with a header)."""
    rs = read_records(path, id_field=id_field, text_field=text_field, allow_empty=allow_empty, what="queries")
    return {r.id: r.text for r in rs.records}


__all__ = ["InvalidInputError", "Problem", "Record", "RecordSet", "read_documents", "read_records", "read_queries",
           "beir_qrels_path", "read_qrels", "read_run", "write_run"]
