"""Training loop for both reranker families: AdamW, linear schedule with warm-up, gradient accumulation, seeds,
per-epoch dev evaluation with early stopping, checkpoint and resume.

Each step takes `lists_per_step` ranking lists, each cut to `list_size` candidates (positives kept, the rest
sampled). CROSS-JEM scores each list jointly; the pointwise model scores the same items pair by pair, so both see
the same data and the loss decides pointwise (bce) vs listwise (rpl, listnet, ce).
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..encoders import tokenize_ids
from ..rerankers.base import Reranker
from ..rerankers.combine import FEATURES, combine_scores, weight_vector
from .data import RankingList, qrels_of
from .losses import LOSSES, NEG
from .teacher import CachedTeacher

DEV_MEASURES = ("AP", "RR", "nDCG@10")


@dataclass
class TrainConfig:
    loss: str = "rpl"
    epochs: int = 3
    lr: float = 1e-4             # the paper's setting for CROSS-JEM and monoBERT
    weight_decay: float = 0.01
    warmup: float = 0.1          # fraction of steps
    lists_per_step: int = 8
    grad_accum: int = 1
    list_size: int = 30          # N (paper: 10 on MS MARCO, 30 on SODQ)
    seed: int = 13
    patience: int = 2            # epochs without dev improvement before stopping
    select_by: str = "nDCG@10"
    targets: str = "auto"        # labels | teacher | auto (teacher when present)
    label_mix: float = 0.0       # with teacher targets: (1 - m) * teacher + m * labels (distillation plus labels)
    temperature: float = 1.0     # the kl loss: both score lists divided by it before the softmax
    lists_per_epoch: int | None = None  # None: as many as there are lists
    mix_temperature: float = 0.5  # set s gets a share of each epoch proportional to n_s ** T (1 = as the data is)
    max_grade: dict = field(default_factory=dict)  # per source, from the data: labels / max_grade -> [0, 1]
    combine: dict | None = None  # {weights, gate}: train the model as the residual of the features' combination
    max_seconds: float | None = None  # no epoch starts that would, at the last epoch's pace, end past this budget


def score_lists(model: Reranker, lists: list[RankingList], show_progress: bool = False,
                desc: str = "scoring") -> list[np.ndarray]:
    """The model's scores for every list's candidates, 64 queries per call."""
    from tqdm.auto import tqdm

    scores: list[np.ndarray] = []
    for start in tqdm(range(0, len(lists), 64), desc=desc, disable=not show_progress):
        part = lists[start:start + 64]
        scores += model.score_ids(model.tokenize_queries([l.query for l in part]), [_item_ids(model, l) for l in part])
    return scores


def teacher_scores(teacher: Reranker | CachedTeacher, lists: list[RankingList], show_progress: bool = True) -> None:
    """Fill each list's `teacher` with the teacher's probabilities (sigmoid of its logits) for every candidate."""
    as_cached(teacher).fill(lists, show_progress=show_progress)


def as_cached(teacher: Reranker | CachedTeacher) -> CachedTeacher:
    """A teacher with a score store (in memory when the caller gave none)."""
    return teacher if isinstance(teacher, CachedTeacher) else CachedTeacher(teacher)


def _item_ids(model: Reranker, l: RankingList) -> list[np.ndarray]:
    """The list's candidate ids for this model's tokenizer, tokenized once per list and kept on it."""
    key = (model.tokenizer.name_or_path, model.config["max_item_tokens"])
    if key not in l.token_ids:
        l.token_ids[key] = tokenize_ids(model.tokenizer, l.texts, model.config["max_item_tokens"])
    return l.token_ids[key]


def _targets(l: RankingList, cfg: TrainConfig) -> np.ndarray:
    labels = l.labels / max(cfg.max_grade.get(l.source, 1.0), 1.0)
    use_teacher = cfg.targets == "teacher" or (cfg.targets == "auto" and l.teacher is not None)
    if not use_teacher:
        return labels
    if l.teacher is None:
        raise ValueError(f"list {l.qid} has no teacher scores (pass --teacher or include teacher_score)")
    return (1.0 - cfg.label_mix) * l.teacher + cfg.label_mix * labels


def _sample(l: RankingList, size: int, rng: random.Random) -> np.ndarray:
    """Up to `size` items: at most half positives (at least one), the rest negatives from the list (its own
    retrieved candidates, hence hard), topped up with more positives when negatives run short."""
    if len(l.docids) <= size:
        return np.arange(len(l.docids))
    pos = [i for i in range(len(l.docids)) if l.labels[i] > 0]
    neg = [i for i in range(len(l.docids)) if l.labels[i] <= 0]
    rng.shuffle(pos)
    rng.shuffle(neg)
    n_pos = min(len(pos), max(1, size // 2))
    n_neg = min(len(neg), size - n_pos)
    keep = pos[:n_pos] + neg[:n_neg] + pos[n_pos:n_pos + size - n_pos - n_neg]
    return np.array(sorted(keep))


def mixed_order(sources: list[str], n_lists: int | None, temperature: float, seed: int, epoch: int) -> list[int]:
    """The list indices one epoch trains on. Each source gets a share proportional to n_s ** temperature, so no
    one dataset dominates; within a source, epochs walk on through one fixed shuffle (wrapping around), so over
    enough epochs every list is used and a resumed run sees the same order."""
    by_source: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        by_source.setdefault(s, []).append(i)
    names = sorted(by_source)
    weights = np.array([len(by_source[s]) ** temperature for s in names])
    total = n_lists or len(sources)
    quotas = np.maximum(1, np.round(total * weights / weights.sum()).astype(int))
    order: list[int] = []
    for s, quota in zip(names, quotas):
        members = by_source[s]
        perm = np.random.default_rng([seed, len(members), sum(map(ord, s))]).permutation(len(members))
        start = (epoch - 1) * quota
        order += [members[perm[(start + j) % len(members)]] for j in range(quota)]
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


def evaluate_lists(model: Reranker, lists: list[RankingList], measures=DEV_MEASURES,
                   combine: tuple[np.ndarray, float] | None = None) -> dict[str, float]:
    """Dev metrics over judged-only lists, per source and their unweighted mean (`measure`), so each dataset
    counts once whatever its size and query ids from different sets never collide. With `combine` (feature
    weights, gate), the lists are ranked as the Combine stage ranks them."""
    import ir_measures

    scores = score_lists(model, lists)
    if combine is not None:
        scores = [combine_scores(_features(l), combine[0], s, combine[1]) for l, s in zip(lists, scores)]
    parsed = [ir_measures.parse_measure(m) for m in measures]
    out: dict[str, float] = {}
    sources = sorted({l.source for l in lists})
    for source in sources:
        part = [(l, sc) for l, sc in zip(lists, scores) if l.source == source]
        run = {l.qid: {d: float(s) for d, s in zip(l.docids, sc)} for l, sc in part}
        agg = ir_measures.calc_aggregate(parsed, qrels_of([l for l, _ in part]), run)
        out.update({f"{source}/{m}": float(agg[m]) for m in parsed})
    for m in parsed:
        out[str(m)] = float(np.mean([out[f"{s}/{m}"] for s in sources]))
    return out


def _features(l: RankingList) -> np.ndarray:
    if l.features is None:
        raise ValueError(f"list {l.qid} ({l.source}) has no first-stage features: build lists over an index "
                         "(--index-dir) or include them in the lists jsonl, or train without --combine")
    return l.features


def features_encoder(lists: list[RankingList], combine: dict) -> str | None:
    """The dual encoder whose cosine the lists' dense feature holds (a fine-tuned combination's own record where the
    lists do not say); lists whose dense features come from different encoders cannot share one dense weight."""
    encoders = {l.dense_encoder for l in lists if l.dense_encoder}
    if len(encoders) > 1 and combine["weights"].get("dense"):
        raise ValueError(f"the training lists' dense features come from {len(encoders)} encoders "
                         f"({', '.join(sorted(encoders))}): build every dataset index with one (--encoder)")
    return encoders.pop() if len(encoders) == 1 else combine.get("dense_encoder")


class ResidualHead(torch.nn.Module):
    """The combined score during training: scale * (w . z(features)) + gate * model logits. A fresh model's gate
    starts at 0 (step 0 ranks exactly as the features do), a fine-tuned one's at its stored gate; the learned scale
    lets the loss sharpen the feature part without the model having to. Rankings ignore the overall scale, so the
    stage uses gate / scale.

    The gate is straight-through for the model: its logits get the gradient they would get with gate 1, so at
    step 0 the model learns exactly what the features miss instead of nothing (a plain gate of 0 passes no gradient
    to the model, and a model that has not learned gives the gate no reason to grow); the gate learns how much of
    the model to use."""

    def __init__(self, weights: dict, gate: float = 0.0, dense_encoder: str | None = None):
        super().__init__()
        self.weights = weight_vector(weights)
        self.dense_encoder = dense_encoder  # recorded with the weights: the stage warns when it reads another one
        self.gate = torch.nn.Parameter(torch.tensor(float(gate)))
        self.log_scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, features: np.ndarray, logits: torch.Tensor) -> torch.Tensor:
        base = torch.from_numpy(combine_scores(features, self.weights)).to(logits.device, torch.float32)
        logits = logits.float()
        return self.log_scale.exp() * base + self.gate * logits.detach() + (logits - logits.detach())

    def stage_config(self) -> dict:
        """The Combine stage's settings (saved with the model)."""
        return {"weights": {f: float(w) for f, w in zip(FEATURES, self.weights) if w},
                "gate": float((self.gate / self.log_scale.exp()).detach())} \
            | ({"dense_encoder": self.dense_encoder} if self.dense_encoder else {})

    def ranking(self) -> tuple[np.ndarray, float]:
        """(weights, gate) as `evaluate_lists` takes them: the lists ranked as the stage will rank them."""
        return self.weights, self.stage_config()["gate"]


class Trainer:
    """One training run's state: the model and its residual head, optimizer, schedule, loss, teacher and the
    trainer state that checkpoints carry (epochs done, best dev score, history)."""

    def __init__(self, model: Reranker, train_lists: list[RankingList], cfg: TrainConfig,
                 teacher: Reranker | CachedTeacher | None = None):
        from transformers import get_linear_schedule_with_warmup

        if cfg.loss not in LOSSES:
            raise ValueError(f"unknown loss '{cfg.loss}' (use {', '.join(LOSSES)})")
        if not train_lists:
            raise ValueError("no training lists")
        self.model, self.lists, self.cfg = model, train_lists, cfg
        self.teacher = as_cached(teacher) if teacher is not None else None
        self.loss_fn = partial(LOSSES[cfg.loss], temperature=cfg.temperature) if cfg.loss == "kl" else LOSSES[cfg.loss]
        for l in train_lists:
            if len(l.labels):
                cfg.max_grade[l.source] = max(cfg.max_grade.get(l.source, 1.0), float(l.labels.max()))
        if self.teacher is not None and cfg.targets == "auto":
            cfg.targets = "teacher"
        torch.manual_seed(cfg.seed)
        self.device = model.device
        self.head = ResidualHead(cfg.combine["weights"], cfg.combine.get("gate", 0.0),
                                 features_encoder(train_lists, cfg.combine)).to(self.device) if cfg.combine else None
        self.groups = [{"params": list(model.network.parameters())}]
        if self.head is not None:  # two scalars: a transformer's learning rate would barely move them
            self.groups.append({"params": list(self.head.parameters()), "lr": 1e-2, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(self.groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil((cfg.lists_per_epoch or len(train_lists)) / (cfg.lists_per_step * cfg.grad_accum))
        total = steps_per_epoch * cfg.epochs
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(cfg.warmup * total), total)
        self.state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "history": [], "config": asdict(cfg)}

    # ---- checkpoints -------------------------------------------------------------------------------------------
    def save_checkpoint(self, directory: Path) -> None:
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save(tmp)
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                   tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(self.state, indent=2))
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)

    def resume(self, directory: Path) -> bool:
        """Continue from a checkpoint directory if there is one (weights, optimizer, schedule, trainer state)."""
        if not (directory / "trainer_state.json").is_file():
            return False
        from safetensors.torch import load_file

        self.model.network.load_state_dict({k: v.float() for k, v in load_file(directory / "model.safetensors").items()})
        opt_state = torch.load(directory / "optimizer.pt", weights_only=True, map_location=self.device)
        self.optimizer.load_state_dict(opt_state["optimizer"])
        self.scheduler.load_state_dict(opt_state["scheduler"])
        self.state = json.loads((directory / "trainer_state.json").read_text())
        if self.head is not None:
            self.head.load_state_dict({k: torch.tensor(v) for k, v in self.state["residual_head"].items()})
        return True

    # ---- training ----------------------------------------------------------------------------------------------
    def loss(self, part: list[RankingList], picks: list[np.ndarray]) -> torch.Tensor:
        """The loss of one group of lists, each cut to its picked items (teacher scores filled in as needed)."""
        model, device = self.model, self.device
        if self.teacher is not None:  # only the sampled items the teacher has not scored yet
            self.teacher.fill(part, [p if l.teacher is None else p[np.isnan(l.teacher[p])] for l, p in zip(part, picks)])
        qids = model.tokenize_queries([l.query for l in part])
        items = [[_item_ids(model, l)[k] for k in p] for l, p in zip(part, picks)]
        with model.autocast():
            logits = model.logits(qids, items)
        width = max(len(p) for p in picks)
        f = torch.full((len(part), width), NEG, device=device)
        y = torch.zeros((len(part), width), device=device)
        mask = torch.zeros((len(part), width), dtype=torch.bool, device=device)
        for r, (l, p, lg) in enumerate(zip(part, picks, logits)):
            f[r, : len(p)] = lg.float() if self.head is None else self.head(_features(l)[p], lg)
            y[r, : len(p)] = torch.from_numpy(_targets(l, self.cfg)[p]).to(device)
            mask[r, : len(p)] = True
        return self.loss_fn(f, y, mask)

    def epoch(self, epoch: int, show_progress: bool = True) -> float | None:
        """One epoch over the mixed order of lists; the running (smoothed) loss."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        rng = random.Random(cfg.seed * 1000 + epoch)  # per-epoch seed: resumed runs see the same order
        order = mixed_order([l.source for l in self.lists], cfg.lists_per_epoch, cfg.mix_temperature, cfg.seed,
                            epoch)
        self.model.network.train()
        bar = tqdm(range(0, len(order), cfg.lists_per_step), desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=not show_progress)
        running = None
        for i, start in enumerate(bar):
            part = [self.lists[j] for j in order[start:start + cfg.lists_per_step]]
            loss = self.loss(part, [_sample(l, cfg.list_size, rng) for l in part]) / cfg.grad_accum
            loss.backward()
            if (i + 1) % cfg.grad_accum == 0 or start + cfg.lists_per_step >= len(order):
                torch.nn.utils.clip_grad_norm_(self.groups[0]["params"], 1.0)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            value = loss.item() * cfg.grad_accum
            running = value if running is None else 0.95 * running + 0.05 * value
            bar.set_postfix(loss=f"{running:.4f}",
                            **({"gate": f"{self.head.gate.item():.3f}"} if self.head is not None else {}))
        self.model.network.eval()
        if self.head is not None:
            self.model.config["combine"] = self.head.stage_config()  # saved with the model: the stage's settings
            self.state["residual_head"] = {k: float(v) for k, v in self.head.state_dict().items()}
        return running

    def evaluate(self, dev_lists: list[RankingList]) -> dict[str, float]:
        """Dev metrics of the model as it will be used (through the Combine stage when trained as its residual)."""
        return evaluate_lists(self.model, dev_lists, combine=self.head.ranking() if self.head is not None else None)


def train(model: Reranker, train_lists: list[RankingList], dev_lists: list[RankingList], cfg: TrainConfig,
          output: str | Path, resume: bool = False, fp16: bool = False, show_progress: bool = True,
          log: Callable[[str], None] = print, teacher: Reranker | CachedTeacher | None = None) -> dict:
    """Train in place; the best dev model is saved to `output`, the last epoch to `output/checkpoint`. With a
    `teacher`, targets are its probabilities on the items each step samples, each scored once (a student's epoch
    only pays for the items it trains on; a CachedTeacher keeps them across runs)."""
    trainer = Trainer(model, train_lists, cfg, teacher)
    state = trainer.state
    output = Path(output)
    ckpt = output / "checkpoint"
    if resume and trainer.resume(ckpt):
        state = trainer.state
        log(f"resumed after epoch {state['epoch']} (best {cfg.select_by} {state['best']:.4f})")
    if trainer.head is not None:
        model.config["combine"] = trainer.head.stage_config()
    if dev_lists and state["epoch"] == 0:
        # Where training starts from is a candidate too: fine-tuning that never beats it on dev keeps it.
        state["before"] = trainer.evaluate(dev_lists)
        state["best"] = state["before"].get(cfg.select_by, state["best"])
        model.save(output, fp16=fp16)
        log("before training: " + " ".join(f"{k} {v:.4f}" for k, v in state["before"].items() if "/" not in k))
    started = time.time() - state.get("train_seconds", 0.0)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if epoch - state["best_epoch"] > cfg.patience:
            log(f"early stop: no dev improvement for {cfg.patience} epochs")
            break
        pace = state["history"][-1].get("epoch_seconds", 0.0) if state["history"] else 0.0
        if cfg.max_seconds and state["history"] and time.time() - started + pace > cfg.max_seconds:
            log(f"stopped before epoch {epoch}: it would end past the {cfg.max_seconds:.0f} s budget")
            break
        epoch_started = time.time()
        running = trainer.epoch(epoch, show_progress)
        state["train_seconds"] = time.time() - started
        dev = trainer.evaluate(dev_lists) if dev_lists else {}
        metric = dev[cfg.select_by] if dev_lists else float(epoch)  # without dev lists the last epoch is kept
        state["history"].append({"epoch": epoch, "train_loss": running, "seconds": round(state["train_seconds"], 1),
                                 "epoch_seconds": round(time.time() - epoch_started, 1), **dev})
        log(f"epoch {epoch}: loss {running:.4f} ({state['train_seconds']:.0f} s) "
            + " ".join(f"{k} {v:.4f}" for k, v in dev.items() if "/" not in k))
        state["epoch"] = epoch
        if metric > state["best"]:
            state["best"], state["best_epoch"] = metric, epoch
            model.save(output, fp16=fp16)
        trainer.save_checkpoint(ckpt)
    (output / "training.json").write_text(json.dumps(state, indent=2))
    return state
