"""Rich tables for the CLI: every command's output shape in one place, no logic beyond formatting."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table


def _table(title: str, columns, justify: str = "right", **kw) -> Table:
    table = Table(title=title, title_justify="left", **kw)
    for col in columns:
        table.add_column(col, justify=justify)
    return table


def hits(query: str, index_name: str, pipeline: str, hits, texts) -> Table:
    table = Table(title=f"{query!r} on {index_name}  [{pipeline}]", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("id")
    table.add_column("score", justify="right")
    table.add_column("text", overflow="fold")
    for r, (h, t) in enumerate(zip(hits, texts), start=1):
        table.add_row(str(r), h.docid, f"{h.score:.4f}", t if len(t) <= 200 else t[:197] + "...")
    return table


def indexes(index_dir, found, width: int = 200):
    """One row per index; under 120 columns, one block of `field  value` lines per index (nine columns do not fit
    a terminal of 80)."""
    from rich.console import Group

    from rerank_pipeline.index import Index

    columns = ("name", "docs", "word pieces", "stages", "encoder", "faiss", "MICE states", "created", "corpus",
               "status")
    rows = []
    for path, manifest in found:
        if isinstance(manifest, str):
            rows.append((path.name, "-", "", "", "", "", "", "", "", f"[red]{escape(manifest)}[/]"))
            continue
        stale = Index(path, manifest).staleness()
        mice = manifest.get("mice")
        states = (f"{mice['bytes'] / 2**20:,.1f} MiB, {mice['tokens']:,} tokens (m={mice['merge_layer']})"
                  if mice else "-")
        pieces = manifest.get("word_pieces")  # indexes built before it was recorded have none
        lengths = (f"median {pieces['median']}, p95 {pieces['p95']}, {pieces['at_cap']:.0%} cut at {pieces['cap']}"
                   if pieces else "-")
        rows.append((manifest["name"], str(manifest["corpus"]["documents"]), lengths, ", ".join(manifest["stages"]),
                     manifest["tokenizer"]["encoder"], manifest.get("dense", {}).get("faiss", "-"), states,
                     manifest["created"], manifest["corpus"]["path"],
                     f"[yellow]{escape(stale)}[/]" if stale else "ok"))
    if width >= 120:
        table = Table(title=f"Indexes in {index_dir}", title_justify="left")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*row)
        return table
    blocks = []
    for row in rows:
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold")
        block.add_column(overflow="fold")
        for col, value in zip(columns[1:], row[1:]):
            block.add_row(col, value)
        blocks += [f"[bold cyan]{escape(row[0])}[/]", block, ""]
    return Group(f"Indexes in {index_dir}", "", *blocks)


def training(state: dict, title: str) -> Table:
    shown = [k for k in state["history"][0] if k not in ("epoch", "train_loss", "seconds", "epoch_seconds")
             and "/" not in k]
    table = _table(title + "; dev: judged-only, mean over datasets", ("epoch", "train loss", "seconds", *shown))
    if state.get("before"):
        table.add_row("before", "-", "0", *[f"{state['before'][k]:.4f}" for k in shown])
    for h in state["history"]:
        table.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['seconds']:.0f}", *[f"{h[k]:.4f}" for k in shown])
    return table


def evaluation(result, title: str) -> Table:
    table = Table(title=title, title_justify="left", caption="* p < 0.05 vs the baseline (randomization test, "
                  "Holm-corrected); deltas are against the baseline row", caption_justify="left")
    table.add_column("#", justify="right")
    table.add_column("system", overflow="fold")
    for m in result.metrics:
        table.add_column(m, justify="right")
    for i, (name, row) in enumerate(result.table.iterrows()):
        cells = []
        for m in result.metrics:
            cell = f"{row[m]:.4f}"
            if name != result.baseline:
                star = "*" if row[f"{m} p(rand)"] < 0.05 else " "
                cell += f" ({row[f'{m} delta']:+.4f}){star}"
            cells.append(cell)
        table.add_row(str(i), name + ("  [baseline]" if name == result.baseline else ""), *cells)
    return table


def frame(title: str, df) -> Table:
    table = _table(title, ["", *map(str, df.columns)])
    for name, row in df.iterrows():
        table.add_row(str(name), *[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values])
    return table


BENCH_HEAD = ["N", "device", "backend", "queries", "CROSS-JEM ms", "pointwise ms", "CROSS-JEM x", "MICE ms", "MICE x",
              "MICE fly ms", "ST CE ms", "CROSS-JEM offline/s", "pointwise offline/s", "CROSS-JEM peak MiB",
              "pointwise peak MiB", "packing", "groups", "union tok", "tok/item", "CROSS-JEM tok/list",
              "pointwise tok/list"]
BENCH_NOTE = ("Median ms per query (each query scored alone), token ids in. x: speed-up over the faster of pointwise and ST CE in the same run. "
              "MICE ms: document states stored at index time; MICE fly ms: computed per call. ST CE: "
              "sentence-transformers CrossEncoder over the pointwise weights, tokenization included. offline/s: "
              "candidate scores per second with all queries' lists in one call; peak MiB: its peak device memory (GPU only). packing: share of CROSS-JEM time; "
              "groups per query, union tokens per group, word pieces per item; tok/list: encoder tokens per list "
              "(CROSS-JEM: every group's [CLS] q [SEP] + union; pointwise: every pair).")


def bench_cells(rows) -> list[list[str]]:
    return [[str(r.n_items), r.device, r.backend, str(r.queries), f"{r.crossjem_ms:.1f}", f"{r.pointwise_ms:.1f}",
             f"{r.speedup:.2f}x", f"{r.mice_ms:.1f}", f"{r.mice_speedup:.2f}x", f"{r.mice_fly_ms:.1f}",
             f"{r.peer_ms:.1f}", f"{r.crossjem_offline:,.0f}", f"{r.pointwise_offline:,.0f}",
             *(f"{m:,.0f}" if m == m else "-" for m in (r.crossjem_peak_mb, r.pointwise_peak_mb)), f"{100 * r.packing_ms / r.crossjem_ms:.1f}%",
             f"{r.groups_per_query:.1f}", f"{r.union_tokens:.0f}", f"{r.item_tokens:.1f}",
             f"{r.crossjem_list_tokens:,.0f}", f"{r.pointwise_list_tokens:,.0f}"]
            for r in rows]


BENCH_TERMINAL = ["N", "backend", "CROSS-JEM ms", "pointwise ms", "CROSS-JEM x", "MICE ms", "MICE x", "MICE fly ms", "ST CE ms"]


def bench(rows, source: str) -> Table:
    """The latency columns (the Markdown file has them all)."""
    keep = [BENCH_HEAD.index(c) for c in BENCH_TERMINAL]
    table = _table(f"Reranker latency on {rows[0].device if rows else '-'}, BM25 candidates from {source}",
                   BENCH_TERMINAL, caption=BENCH_NOTE, caption_justify="left")
    for c in bench_cells(rows):
        table.add_row(*[c[i] for i in keep])
    return table


def bench_markdown(rows, source: str) -> str:
    md = [f"Candidates: BM25 top-N from {source}. {BENCH_NOTE}", "", "| " + " | ".join(BENCH_HEAD) + " |", "|" + "---|" * len(BENCH_HEAD)]
    md += ["| " + " | ".join(c) + " |" for c in bench_cells(rows)]
    return "\n".join(md) + "\n"
