"""`rerank train` and `rerank distill`: ranking lists from datasets, teacher scores, the training loop."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import app, console, fail, known_errors


class ModelKind(str, Enum):
    crossjem = "crossjem"
    pointwise = "pointwise"
    mice = "mice"


class LossName(str, Enum):
    rpl = "rpl"
    rpl_inclusive = "rpl-inclusive"
    listnet = "listnet"
    ce = "ce"
    bce = "bce"
    margin_mse = "margin-mse"
    kl = "kl"


@app.command()
def train(
    model: ModelKind = typer.Option(..., "--family", "--model", help="Reranker family to train (--model: its old name; everywhere else --model is a model directory)."),
    data: List[Path] = typer.Option(..., "--data", help="BEIR-layout dataset dir or lists jsonl; repeatable."),
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write (best dev epoch)."),
    split: str = typer.Option("train", "--split", help="Training split."),
    dev_split: Optional[str] = typer.Option("dev", "--dev-split", help="Dev split evaluated each epoch ('' for none; held out of train where a set has no dev)."),
    dev_data: List[Path] = typer.Option([], "--dev-data", help="Dataset dirs for the dev split (default: the --data dirs)."),
    loss: LossName = typer.Option(LossName.rpl, "--loss", help="rpl (Eq. 2), rpl-inclusive, listnet, ce (softmax CE), bce, margin-mse (MICE), kl (listwise distillation)."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Model whose scores become the targets (distillation): 'ms-marco-minilm-l12' (packaged) or a model dir; MICE is cut from it (a pointwise or Hugging Face BERT cross-encoder)."),
    teacher_cache: Optional[Path] = typer.Option(None, "--teacher-cache", help="SQLite store of the teacher's scores, each pair computed once (default: in the user cache dir)."),
    label_mix: float = typer.Option(0.0, "--label-mix", min=0.0, max=1.0, help="With --teacher: targets (1-m)*teacher + m*labels."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.05, help="--loss kl: softmax temperature of teacher and student."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder to start from: a local dir or a packaged model ('ms-marco-minilm-l12', 'bge-small-en-v1.5'); default all-MiniLM-L6-v2."),
    layers: Optional[int] = typer.Option(None, "--layers", min=1, help="Keep this many of the encoder's layers, evenly spaced (a 6-layer student of a 12-layer teacher)."),
    init: Optional[str] = typer.Option(None, "--init", help="Fine-tune a trained model: 'default' (the shipped one) or a model dir; keeps its feature weights unless --combine is given."),
    combine: Optional[str] = typer.Option(None, "--combine", help="Train as the residual of a feature combination, e.g. 'bm25=0.3,dense=0.7' (needs --index-dir lists)."),
    epochs: int = typer.Option(3, "--epochs", min=1),
    lr: float = typer.Option(5e-5, "--lr", help="AdamW learning rate."),
    lists_per_step: int = typer.Option(8, "--lists-per-step", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    list_size: int = typer.Option(30, "--list-size", min=2, help="Candidates per list (N)."),
    lists_per_epoch: Optional[int] = typer.Option(None, "--lists-per-epoch", min=1, help="Lists drawn per epoch (default: all)."),
    mix_temperature: float = typer.Option(0.5, "--mix-temperature", min=0.0, max=1.0, help="Dataset share ~ size ** T."),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir", help="Where dataset indexes for BM25/dense candidates live (built once); none: given runs only."),
    dense: bool = typer.Option(False, "--dense", help="Add dense top-k candidates (builds dense dataset indexes)."),
    given_k: int = typer.Option(30, "--given-k", min=0, help="Top-k of the candidate run that comes with the data."),
    bm25_k: int = typer.Option(20, "--bm25-k", min=0),
    dense_k: int = typer.Option(20, "--dense-k", min=0),
    max_lists: Optional[int] = typer.Option(None, "--max-lists", min=1, help="At most this many queries per dataset (smoke runs)."),
    max_dev_lists: Optional[int] = typer.Option(None, "--max-dev-lists", min=1, help="At most this many dev queries per dataset (cheaper per-epoch dev)."),
    max_item_tokens: Optional[int] = typer.Option(None, "--max-item-tokens", min=8, max=480, help="Word pieces kept per candidate (long documents: first passage)."),
    position_encoding: bool = typer.Option(False, "--position-encoding", help="CROSS-JEM Appendix F in-item positions."),
    merge_layer: int = typer.Option(2, "--merge-layer", min=0, help="MICE m: layers below it see query and document apart."),
    depth: int = typer.Option(5, "--depth", min=2, help="MICE d: layers m..d-1 interact, the rest are dropped."),
    seed: int = typer.Option(13, "--seed"),
    patience: int = typer.Option(2, "--patience", min=1),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", min=0.1, help="Wall-clock budget: no epoch starts that would end past it (at the last epoch's pace)."),
    fp16: bool = typer.Option(False, "--fp16", help="Store weights as fp16 (half the size)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoint."),
) -> None:
    """Train a CROSS-JEM, pointwise or MICE reranker; the best dev epoch is saved to OUTPUT as safetensors."""
    from rerank_pipeline.rerankers import MICE, RERANKERS, load_default
    from rerank_pipeline.training import ListSpec, TrainConfig, load_many
    from rerank_pipeline.training import train as run_training

    weights = parse_weights(combine) if combine else None  # a typo fails before any list is built
    if model == ModelKind.mice and teacher is None:
        fail("--family mice: MICE is cut from a trained cross-encoder and distilled from it; pass --teacher DIR or --teacher ms-marco-minilm-l12")
    try:
        spec = ListSpec(given_k=given_k, bm25_k=bm25_k, dense_k=dense_k, max_lists=max_lists)
        train_lists = load_many(data, split, spec, index_dir, dense)
        dev_spec = ListSpec(given_k=given_k, bm25_k=bm25_k, dense_k=dense_k, add_positives=False,
                            max_lists=max_dev_lists)
        dev_lists = load_many(dev_data or [d for d in data if d.is_dir()], dev_split, dev_spec, index_dir,
                              dense) if dev_split else []
        console.print(f"{len(train_lists)} training lists, {len(dev_lists)} dev lists")
        extra = {"position_encoding": position_encoding} if model == ModelKind.crossjem else {}
        if max_item_tokens:
            extra["max_item_tokens"] = max_item_tokens
        if init == "default":
            net = load_default("torch", model.value)
        elif init is not None:
            net = RERANKERS[model.value].load(init)
        elif model == ModelKind.mice:
            net = MICE.from_teacher(teacher, merge_layer=merge_layer, depth=depth, **extra)
        else:
            net = RERANKERS[model.value].from_encoder(encoder, layers=layers, **extra)
        residual = {"weights": weights} if weights else net.config.get("combine")
        cfg = TrainConfig(loss=loss.value, epochs=epochs, lr=lr, lists_per_step=lists_per_step, grad_accum=grad_accum,
                          list_size=list_size, seed=seed, patience=patience, lists_per_epoch=lists_per_epoch,
                          mix_temperature=mix_temperature, label_mix=label_mix, temperature=temperature,
                          combine=residual,
                          max_seconds=60 * max_minutes if max_minutes else None)
        state = run_training(net, train_lists, dev_lists, cfg, output, resume=resume, fp16=fp16,
                             log=lambda m: console.print(m, highlight=False),
                             teacher=cached_teacher(teacher, teacher_cache) if teacher is not None else None)
    except known_errors() as e:
        fail(str(e))
    console.print(render.training(state, f"training {model.value} ({loss.value}) -> {output}"))
    console.print(f"best epoch {state['best_epoch']} ({state['config']['select_by']} {state['best']:.4f}) saved to {output}")


def cached_teacher(teacher: Path, store: Path | None):
    """The teacher on its fastest CPU backend of equal quality, its scores kept in `store` (default: the cache)."""
    from rerank_pipeline.files import cache_root
    from rerank_pipeline.rerankers import Reranker
    from rerank_pipeline.training import CachedTeacher

    return CachedTeacher(Reranker.load(teacher, backend="auto"), store or cache_root() / "teacher-scores.sqlite")


def parse_weights(text: str) -> dict[str, float]:
    """'bm25=0.3,dense=0.7' -> {'bm25': 0.3, 'dense': 0.7}."""
    from rerank_pipeline.rerankers.combine import weight_vector

    try:
        weights = {k.strip(): float(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
        weight_vector(weights)
    except ValueError as e:
        raise typer.BadParameter(f"--combine {text!r}: {e} (expected e.g. 'bm25=0.3,dense=0.7')") from None
    return weights


@app.command()
def distill(
    data: List[Path] = typer.Option([], "--data", help="BEIR-layout dataset dir or lists jsonl; repeatable."),
    queries: Optional[Path] = typer.Option(None, "--queries", "-q", help="Your queries (jsonl/tsv, no judgments needed): lists are their top --k over --index."),
    index_name: Optional[str] = typer.Option(None, "--index", help="With --queries: the index (under --index-dir, default indexes/) whose first stage gives the candidates."),
    k: int = typer.Option(30, "-k", min=2, help="With --queries: candidates per query."),
    output: Path = typer.Option(..., "--output", "-o", help="Lists jsonl (.gz: compressed) to write, with teacher scores if --teacher."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Teacher: 'ms-marco-minilm-l12' (packaged) or a model dir; without one the lists are exported as they are."),
    teacher_cache: Optional[Path] = typer.Option(None, "--teacher-cache", help="SQLite store of the teacher's scores (default: in the user cache dir)."),
    max_chars: Optional[int] = typer.Option(None, "--max-chars", min=16, help="Cut candidate texts to this many characters."),
    split: str = typer.Option("train", "--split"),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir", help="Dataset indexes for BM25/dense candidates."),
    dense: bool = typer.Option(False, "--dense", help="Add dense top-k candidates."),
    given_k: int = typer.Option(30, "--given-k", min=0),
    bm25_k: int = typer.Option(20, "--bm25-k", min=0),
    dense_k: int = typer.Option(20, "--dense-k", min=0),
    max_lists: Optional[int] = typer.Option(None, "--max-lists", min=1),
) -> None:
    """Write training lists as jsonl, scored by a teacher when given (distil once, train many times; or carry the
    lists to a machine without the datasets). With --queries and --index, lists of your own corpus without any
    judgments: `rerank train --data LISTS --dev-split '' --loss kl --init default` then fits the reranker to it."""
    from rerank_pipeline.training import ListSpec, lists_from_index, load_many, teacher_scores, write_lists_jsonl

    if not data and not (queries and index_name):
        fail("give --data DIR (repeatable) or --queries FILE with --index NAME")
    try:
        lists = load_many(data, split, ListSpec(given_k=given_k, bm25_k=bm25_k, dense_k=dense_k, max_lists=max_lists),
                          index_dir, dense) if data else []
        if queries is not None:
            from rerank_pipeline.index import open_index
            from rerank_pipeline.io import read_queries

            lists += lists_from_index(open_index(index_name, index_dir or Path("indexes")), read_queries(queries), k)
        if teacher is not None:
            teacher_scores(cached_teacher(teacher, teacher_cache), lists)
        write_lists_jsonl(lists, output, max_chars)
    except known_errors() as e:
        fail(str(e))
    console.print(f"wrote {len(lists)} lists{' with teacher scores' if teacher else ''} to {output}")
