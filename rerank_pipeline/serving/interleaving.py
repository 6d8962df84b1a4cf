"""Team-draft interleaving (Radlinski et al. 2008) and A/B assignment by session hash."""
from __future__ import annotations

import hashlib
import random
from typing import Sequence


def team_draft(a: Sequence[str], b: Sequence[str], k: int, rng: random.Random) -> list[tuple[str, str]]:
    """Interleave two rankings into at most k (docid, team) pairs, team 'A' or 'B'. Each round the team with fewer
    picks (a coin flip on ties) adds its highest-ranked document not yet shown."""
    out: list[tuple[str, str]] = []
    shown: set[str] = set()
    ia = ib = 0
    picks = {"A": 0, "B": 0}
    while len(out) < k:
        while ia < len(a) and a[ia] in shown:
            ia += 1
        while ib < len(b) and b[ib] in shown:
            ib += 1
        if ia >= len(a) and ib >= len(b):
            break
        a_turn = picks["A"] < picks["B"] or (picks["A"] == picks["B"] and rng.random() < 0.5)
        if (a_turn and ia < len(a)) or ib >= len(b):
            out.append((a[ia], "A"))
            shown.add(a[ia])
            picks["A"] += 1
        else:
            out.append((b[ib], "B"))
            shown.add(b[ib])
            picks["B"] += 1
    return out


def credit(teams: Sequence[str], clicked_ranks: Sequence[int]) -> str:
    """'A', 'B' or 'tie' for one impression: the team whose documents got more clicks (ranks are 1-based)."""
    a = sum(1 for r in clicked_ranks if teams[r - 1] == "A")
    b = sum(1 for r in clicked_ranks if teams[r - 1] == "B")
    return "A" if a > b else "B" if b > a else "tie"


def ab_bucket(session: str, salt: str = "rerank-ab") -> str:
    """Stable A/B assignment: the same session always sees the same system."""
    return "A" if hashlib.sha256(f"{salt}:{session}".encode()).digest()[0] % 2 == 0 else "B"
