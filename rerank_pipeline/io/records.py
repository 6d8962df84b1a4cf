"""Reading id+text records (corpora, queries) from jsonl, tsv/csv and parquet, with full validation.

Every problem is reported with file, line and field; all of them are collected, not only the first. Callers either
get clean records or an `InvalidInputError` listing what is wrong (or, with `skip_invalid`, the clean records and
the problems that were skipped).
"""
from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..files import file_sha256

# Fields tried in order when the caller names none: pyserini, BEIR, and plain shapes.
ID_FIELDS = ("_id", "id", "docid", "doc_id", "qid", "query_id")
TEXT_FIELDS = ("contents", "text", "query", "body")
TITLE_FIELD = "title"
MAX_FIELD_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: field '{self.field}': {self.message}" if self.field else f"{where}: {self.message}"


class InvalidInputError(ValueError):
    """Input that failed validation; `problems` holds every problem found."""

    def __init__(self, problems: list[Problem], what: str = "input"):
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        if len(problems) == 1:
            super().__init__(str(problems[0]))
        else:
            super().__init__(f"{len(problems)} problem(s) in {what}:\n{shown}{more}")


@dataclass
class RecordSet:
    records: list[Record]
    skipped: list[Problem] = field(default_factory=list)
    sha256: str = ""
    empty: int = 0  # records kept with empty text (allow_empty)
    title_only: int = 0  # records with a title and no text field: their title is their text


COMPRESSED = (".gz", ".zst")


def _open_bytes(path: Path):
    """The file's bytes, decompressed when the name ends in .gz or .zst."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    if suffix == ".zst":
        import zstandard

        return io.BufferedReader(zstandard.open(path, "rb"))  # adds line iteration
    return open(path, "rb")


def _format_suffix(path: Path) -> str:
    """`.jsonl` for `x.jsonl`, `x.jsonl.gz` and `x.jsonl.zst`."""
    return Path(path.stem).suffix.lower() if path.suffix.lower() in COMPRESSED else path.suffix.lower()


def _rows_jsonl(path: Path, problems: list[Problem]) -> Iterator[tuple[int, dict]]:
    with _open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(Problem(str(path), lineno, "", f"invalid UTF-8 at byte {e.start}"))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                message = e.msg.removesuffix(" at")  # some end in "at" already ("Invalid control character at")
                problems.append(Problem(str(path), lineno, "", f"malformed JSON: {message} at column {e.colno}"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem(str(path), lineno, "", f"expected a JSON object, got {type(obj).__name__}"))
                continue
            yield lineno, obj


def _rows_delimited(path: Path, problems: list[Problem],
                    named: tuple[str | None, ...] = ()) -> Iterator[tuple[int, dict]]:
    """Rows of a tsv/csv with a header; a two-column file whose first line names no known field (and none the
    caller asked for) is MS MARCO style, headerless `id<TAB>text`."""
    with _open_bytes(path) as f:
        data = f.read()
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        problems.append(Problem(str(path), line, "", f"invalid UTF-8 at byte {e.start}"))
        return
    delimiter = "," if _format_suffix(path) == ".csv" else "\t"
    first = next(csv.reader(io.StringIO(content, newline=""), delimiter=delimiter), [])
    known = {*ID_FIELDS, *TEXT_FIELDS, TITLE_FIELD, *(n for n in named if n)}
    headerless = len(first) == 2 and not known & set(first)
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter,
                            fieldnames=["id", "text"] if headerless else None)
    for row in reader:
        lineno = reader.line_num
        if None in row:
            problems.append(Problem(str(path), lineno, "", "more columns than the header"))
            continue
        yield lineno, row


def _rows_parquet(path: Path, problems: list[Problem]) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for unreadable files
        problems.append(Problem(str(path), 0, "", f"not a readable parquet file: {e}"))
        return
    for i, row in enumerate(table.to_pylist(), start=1):
        yield i, row


def _pick(obj: dict, wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return wanted
    return next((f for f in candidates if f in obj), None)


def read_records(
    path: str | Path,
    *,
    id_field: str | None = None,
    text_field: str | None = None,
    skip_invalid: bool = False,
    allow_empty: bool = False,
    what: str = "corpus",
) -> RecordSet:
    """Read and validate id+text records. BEIR `title` is joined before `text` with a space, as BEIR tools do.
    `allow_empty` keeps records with empty text (as ""), counted in `RecordSet.empty`: a dataset being evaluated
    is read as it is, while an index build rejects them unless told to skip."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError([Problem(str(path), 0, "", "file not found")], what)
    problems: list[Problem] = []
    suffix = _format_suffix(path)
    if suffix in (".jsonl", ".json", ".ndjson"):
        rows = _rows_jsonl(path, problems)
    elif suffix in (".tsv", ".csv", ".txt"):
        rows = _rows_delimited(path, problems, (id_field, text_field))
    elif suffix == ".parquet":
        rows = _rows_parquet(path, problems)
    else:
        raise InvalidInputError([Problem(str(path), 0, "", f"unknown format '{suffix}' (use jsonl, tsv, csv, "
                                                           "parquet; .gz or .zst compressed)")], what)

    records: list[Record] = []
    first_line: dict[str, int] = {}
    empty = title_only = 0
    for lineno, obj in rows:
        n_before = len(problems)
        idf = _pick(obj, id_field, ID_FIELDS)
        tf = _pick(obj, text_field, TEXT_FIELDS)
        doc_id = obj.get(idf) if idf else None
        if doc_id is None or doc_id == "":
            problems.append(Problem(str(path), lineno, idf or "/".join(ID_FIELDS[:2]), "missing id"))
        elif isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
            problems.append(Problem(str(path), lineno, idf, f"id must be a string, got {type(doc_id).__name__}"))
        else:
            doc_id = str(doc_id)
            if doc_id in first_line:
                problems.append(Problem(str(path), lineno, idf, f"duplicate id '{doc_id}' (first on line {first_line[doc_id]})"))
        parts = []
        for fname in ((TITLE_FIELD,) if text_field is None and tf != TITLE_FIELD else ()) + ((tf,) if tf else ()):
            value = obj.get(fname)
            if value is None:
                continue
            if not isinstance(value, str):
                problems.append(Problem(str(path), lineno, fname, f"must be a string, got {type(value).__name__}"))
            elif len(value) > MAX_FIELD_CHARS:
                problems.append(Problem(str(path), lineno, fname, f"{len(value)} characters, over the {MAX_FIELD_CHARS} limit"))
            elif value.strip():
                parts.append(value.strip())
        text = " ".join(parts)
        title_only += tf is None and bool(text)
        if not text and len(problems) == n_before and allow_empty:
            empty += 1
        elif not text and len(problems) == n_before:
            problems.append(Problem(str(path), lineno, tf or "/".join(TEXT_FIELDS[:2]), "empty text"))
        if len(problems) == n_before:
            first_line[doc_id] = lineno
            records.append(Record(doc_id, text, lineno))

    if not records and not problems:
        problems.append(Problem(str(path), 0, "", f"empty file: no {what} records"))
    if problems and (not skip_invalid or not records):
        raise InvalidInputError(problems, what)
    if empty:
        warnings.warn(f"{path}: {empty} {what} record(s) with empty text kept; they match nothing", stacklevel=2)
    if title_only:
        warnings.warn(f"{path}: {title_only} {what} record(s) have a '{TITLE_FIELD}' and no text field "
                      f"({', '.join(TEXT_FIELDS)}); their title is their text", stacklevel=2)
    return RecordSet(records, problems, file_sha256(path), empty, title_only)


def read_documents(path: str | Path, only: set[str] | None = None) -> dict[str, str]:
    """A corpus file's documents by id (just the ids in `only`, when given), validated like an index build except
    that documents with empty text are kept (with a warning that counts them)."""
    return {r.id: r.text for r in read_records(path, allow_empty=True).records if only is None or r.id in only}
