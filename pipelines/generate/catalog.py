"""The item catalog: categories, plausible titles and descriptions, Zipf-like popularity."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

from pipelines.generate.lexicon import ADJECTIVES, BRANDS, CATEGORIES, DESCRIPTIONS

# Categories whose items are works with a title rather than products with a brand.
_MEDIA = frozenset({"books", "music", "movies", "games"})
_TITLE_WORDS = (
    "Horizon",
    "Echoes",
    "River",
    "Harbor",
    "Lanterns",
    "Signal",
    "Orchard",
    "Voyage",
    "Embers",
    "Atlas",
    "Tides",
    "Meridian",
    "Hollow",
    "Compass",
    "Static",
    "Canopy",
)
_ZIPF_EXPONENT = 1.0
_MIN_PER_CATEGORY = 3


@dataclass(frozen=True)
class Catalog:
    """Items as columns plus the rows written to catalog.jsonl."""

    item_ids: list[str]
    category: np.ndarray  # int8 per item
    noun: list[str]  # item kind, lower case, for reviews
    popularity: np.ndarray  # float64 per item, sums to 1
    quality: np.ndarray  # float64 per item: shifts its ratings a little
    by_category: list[np.ndarray]  # item indices of each category
    cumulative: list[np.ndarray]  # their cumulative popularity, for sampling
    rows: list[dict[str, object]]


def _with_articles(text: str) -> str:
    """ "a essential" -> "an essential": templates cannot know the adjective."""
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _title(rng: random.Random, category: str, noun: str) -> str:
    adjective = rng.choice(ADJECTIVES)
    if category in _MEDIA:
        word, other = rng.sample(_TITLE_WORDS, 2)
        shapes = (
            f"The {adjective} {word}",
            f"{word} of the {adjective} {other}",
            f"{word}: {noun}",
        )
        return rng.choice(shapes)
    return f"{rng.choice(BRANDS)} {adjective} {noun}"


def build_catalog(rng: np.random.Generator, text_rng: random.Random, items: int) -> Catalog:
    """`items` items over every category (at least three each)."""
    n_categories = len(CATEGORIES)
    items = max(items, n_categories * _MIN_PER_CATEGORY)
    shares = np.array([category.weight for category in CATEGORIES])
    spread = rng.multinomial(items - n_categories * _MIN_PER_CATEGORY, shares / shares.sum())
    category = np.repeat(np.arange(n_categories, dtype=np.int8), _MIN_PER_CATEGORY + spread)
    rng.shuffle(category)
    ranks = rng.permutation(items) + 1
    popularity = 1.0 / ranks**_ZIPF_EXPONENT
    popularity /= popularity.sum()
    quality = rng.normal(0.0, 0.4, items)
    width = max(6, len(str(items - 1)))
    item_ids = [f"i{index:0{width}d}" for index in range(items)]
    nouns: list[str] = []
    rows: list[dict[str, object]] = []
    for index, code in enumerate(category.tolist()):
        spec = CATEGORIES[code]
        noun = text_rng.choice(spec.nouns)
        genres = text_rng.sample(spec.genres, text_rng.randint(1, min(3, len(spec.genres))))
        adjective, brand = text_rng.choice(ADJECTIVES).lower(), text_rng.choice(BRANDS)
        text = text_rng.choice(DESCRIPTIONS).format(
            adj=adjective, noun=noun.lower(), genre=genres[0], brand=brand
        )
        nouns.append(noun.lower())
        rows.append(
            {
                "item_id": item_ids[index],
                "title": _title(text_rng, spec.name, noun),
                "category": spec.name,
                "genres": genres,
                "text": _with_articles(text[0].upper() + text[1:]),
            }
        )
    members = [np.flatnonzero(category == code).astype(np.int32) for code in range(n_categories)]
    cumulative = [np.cumsum(popularity[indices]) for indices in members]
    return Catalog(item_ids, category, nouns, popularity, quality, members, cumulative, rows)
