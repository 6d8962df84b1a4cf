"""Training: ranking-list data, losses (RPL, ListNet, softmax CE, BCE, MarginMSE, KL), teacher scores and the loop."""
from .data import (ListSpec, RankingList, build_lists, lists_from_index, load_jsonl_lists, load_lists, load_many,
                   write_lists_jsonl)
from .losses import (LOSSES, bce_loss, kl_loss, listnet_loss, margin_mse_loss, rpl_inclusive_loss, rpl_loss,
                     softmax_ce_loss)
from .loop import TrainConfig, evaluate_lists, teacher_scores, train
from .teacher import CachedTeacher

__all__ = ["ListSpec", "RankingList", "build_lists", "lists_from_index", "load_jsonl_lists", "load_lists", "load_many",
           "write_lists_jsonl", "LOSSES", "bce_loss", "kl_loss", "listnet_loss", "margin_mse_loss",
           "rpl_inclusive_loss", "rpl_loss", "softmax_ce_loss", "TrainConfig", "evaluate_lists", "teacher_scores",
           "train", "CachedTeacher"]
