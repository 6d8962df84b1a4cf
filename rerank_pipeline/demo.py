"""A small demo corpus of search-ad keywords and product titles, written by this project (no external data).

Items are composed from hand-written brands, products, places and ad templates, deterministically, so
`rerank search "patagonia japan"` on the demo index has sensible answers (Patagonia stores in Japan, Patagonia travel
from Japan, Japanese outdoor shops) mixed with near misses (Patagonia in Chile, other brands in Japan).
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

BRANDS = ["patagonia", "the north face", "arc'teryx", "columbia", "montbell", "snow peak", "uniqlo", "muji"]
PRODUCTS = ["fleece jacket", "down jacket", "rain shell", "hiking boots", "daypack", "trail running shoes",
            "merino base layer", "camping tent", "sleeping bag", "insulated vest"]
PLACES = ["japan", "tokyo", "kyoto", "osaka", "shimoda", "hokkaido", "okinawa", "chile", "argentina", "el calafate",
          "torres del paine", "ushuaia", "oaxaca", "mexico city", "lisbon", "portugal", "iceland", "new zealand",
          "colorado", "vancouver"]
STORE_TEMPLATES = ["{brand} store {place}", "{brand} outlet {place}", "buy {brand} {product} {place}",
                   "{brand} {product} free shipping to {place}"]
TRAVEL_TEMPLATES = ["flights to {place}", "cheap hotels {place}", "{place} travel guide", "tours from {place}",
                    "car rental {place}", "things to do in {place}", "{place} hiking trails"]
HANDWRITTEN = [
    "clothing store japan", "patagonia homes shimoda", "patagonia travel packages from japan",
    "patagonia trekking tours for japanese travelers", "patagonia japan online store", "patagonia shibuya tokyo",
    "patagonia kamakura surf shop japan", "patagonia worn wear repair japan", "patagonia fleece sale japan",
    "japanese outdoor clothing brands", "outdoor gear shops in japan", "shimoda surf lessons", "shimoda ryokan onsen",
    "oaxaca food tours", "oaxaca mezcal tasting", "oaxaca cooking class", "mole negro recipe oaxaca",
    "patagonia chile glacier cruise", "patagonia argentina estancia stay", "fitz roy trek patagonia",
    "perito moreno glacier tour", "japan rail pass", "kyoto temple tour", "tokyo sushi restaurant reservations",
    "hokkaido ski resort packages", "okinawa beach resort", "lisbon tram 28 tickets", "iceland ring road camper",
    "new zealand great walks booking", "vancouver island whale watching",
    "Patagonia Men's Better Sweater Fleece Jacket", "Patagonia Women's Nano Puff Insulated Jacket",
    "Patagonia Black Hole Duffel 55L", "Patagonia Torrentshell 3L Rain Jacket", "Patagonia Capilene Cool Daily Shirt",
    "The North Face Nuptse Down Jacket", "Arc'teryx Beta AR Shell Jacket", "Columbia Newton Ridge Hiking Boot",
    "Montbell Superior Down Parka", "Snow Peak Titanium Mug 450", "Uniqlo Ultra Light Down Vest",
    "Muji Walnut Wood Tray", "Salomon X Ultra 4 GTX Hiking Shoe", "Osprey Talon 22 Daypack",
    "Big Agnes Copper Spur HV UL2 Tent", "Smartwool Merino 250 Base Layer Crew",
]


def demo_records(seed: int = 7) -> list[dict]:
    """About 400 short items, each {"id", "text"}; deterministic for a given seed."""
    rng = random.Random(seed)
    texts = list(HANDWRITTEN)
    for brand, place in itertools.product(BRANDS, PLACES):
        template = rng.choice(STORE_TEMPLATES)
        texts.append(template.format(brand=brand, place=place, product=rng.choice(PRODUCTS)))
    for template, place in itertools.product(TRAVEL_TEMPLATES, PLACES):
        if rng.random() < 0.6:
            texts.append(template.format(place=place))
    for brand, product in itertools.product(BRANDS, PRODUCTS):
        if rng.random() < 0.35:
            texts.append(f"{brand} {product}")
    unique = list(dict.fromkeys(texts))
    return [{"id": f"demo-{i:04d}", "text": t} for i, t in enumerate(unique)]


ADJECTIVES = ["lightweight", "waterproof", "insulated", "recycled", "womens", "mens", "kids", "vintage", "packable",
              "ultralight", "organic", "merino", "classic", "technical", "windproof", "cheap", "premium", "sale"]
COLOURS = ["black", "navy", "red", "olive", "grey", "blue", "orange", "white", "green", "tan"]


def synthetic_titles(n: int, seed: int = 0) -> list[str]:
    """n short product titles over the demo vocabulary, for benchmarks (large corpora, long candidate lists)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [rng.choice(BRANDS), rng.choice(ADJECTIVES), rng.choice(COLOURS), rng.choice(PRODUCTS)]
        if rng.random() < 0.5:
            parts.append(rng.choice(PLACES))
        if rng.random() < 0.3:
            parts.append(f"size {rng.choice(['xs', 's', 'm', 'l', 'xl'])}")
        out.append(" ".join(parts))
    return out


def write_demo_corpus(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in demo_records():
            f.write(json.dumps(r) + "\n")
    return path


def write_titles_corpus(path: str | Path, n: int, seed: int = 0) -> Path:
    """n synthetic titles as a jsonl corpus (ids p0, p1, ...): the benchmarks' generated corpus."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(synthetic_titles(n, seed)):
            f.write(json.dumps({"id": f"p{i}", "text": t}) + "\n")
    return path

