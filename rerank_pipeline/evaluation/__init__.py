"""Evaluation: offline (trec_eval-exact metrics, per-stage tables, significance, plots)."""
from .offline import (DEFAULT_METRICS, EvalResult, EvaluationError, compare, experiment, holm, judged_queries,
                      parse_metrics, per_query_scores, randomization_test)

__all__ = ["DEFAULT_METRICS", "EvalResult", "EvaluationError", "compare", "experiment", "holm", "judged_queries",
           "parse_metrics", "per_query_scores", "randomization_test"]
