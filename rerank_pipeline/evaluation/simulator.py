"""Click simulator: replays a dataset's queries against a running server and clicks the way a click model driven by
qrels says a user would (Chuklin et al., Click Models for Web Search).

- cascade: the user scans from the top, clicks a result with its attractiveness, and stops after a click with
  probability `stop_after_click`.
- pbm (position-based): each result is examined with probability (1/rank)^eta and clicked with its attractiveness.

Attractiveness grows with the relevance grade; after a click the user returns after a dwell time: long for a
relevant result, short (a quick-back) for a non-relevant one.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from ..types import Qrels, Queries


@dataclass
class ClickModel:
    kind: str = "cascade"                 # cascade | pbm
    attract: tuple[float, ...] = (0.05, 0.5, 0.8, 0.95)  # by grade 0, 1, 2, 3+
    stop_after_click: float = 0.7
    eta: float = 1.0
    dwell_relevant_s: float = 60.0
    dwell_nonrelevant_s: float = 3.0

    def clicks(self, grades: list[int], rng: random.Random) -> list[int]:
        """Clicked ranks (1-based) for a result list with these relevance grades."""
        out = []
        for rank, grade in enumerate(grades, start=1):
            p = self.attract[min(max(grade, 0), len(self.attract) - 1)]
            if self.kind == "pbm":
                if rng.random() < (1 / rank) ** self.eta and rng.random() < p:
                    out.append(rank)
            elif self.kind == "cascade":
                if rng.random() < p:
                    out.append(rank)
                    if rng.random() < self.stop_after_click:
                        break
            else:
                raise ValueError(f"unknown click model '{self.kind}' (use cascade or pbm)")
        return out


def simulate(base_url: str, queries: Queries, qrels: Qrels, model: ClickModel, sessions: int = 1, k: int = 10,
             seed: int = 0, show_progress: bool = False) -> dict[str, int]:
    """Each judged query is issued `sessions` times (one simulated user each); returns counts of what was sent."""
    import httpx
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    topics = [(q, queries[q]) for q in qrels if q in queries]
    sent = {"searches": 0, "clicks": 0, "errors": 0}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for s in tqdm(range(sessions), desc="sessions", disable=not show_progress):
            for qid, text in topics:
                r = client.get("/search", params={"q": text, "k": k, "session": f"sim-{s}-{qid}"})
                if r.status_code != 200:
                    sent["errors"] += 1
                    continue
                sent["searches"] += 1
                data = r.json()
                grades = [qrels[qid].get(hit["id"], 0) for hit in data["results"]]
                for rank in model.clicks(grades, rng):
                    hit = data["results"][rank - 1]
                    client.post("/click", json={"request_id": data["request_id"], "id": hit["id"]})
                    dwell = model.dwell_relevant_s if grades[rank - 1] > 0 else model.dwell_nonrelevant_s
                    client.post("/return", json={"request_id": data["request_id"], "id": hit["id"], "dwell_s": dwell})
                    sent["clicks"] += 1
    return sent
