"""Build a whole dataset in memory: events, line order, malformed lines, truth and queries.

Pure and deterministic: the same config gives the same dataset, byte for byte once written.
Every random stream is derived from the seed and used in a fixed order; the JSONL and Parquet
forms share all valid events (only the malformed lines are JSONL's alone).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise

import numpy as np

from core.contract import CONTRACT_VERSION, SIGNAL_TYPES
from core.times import EPOCH
from pipelines.generate.behaviour import Users, browse, build_users, drop_views
from pipelines.generate.catalog import Catalog, build_catalog
from pipelines.generate.config import GenerateConfig
from pipelines.generate.conversations import add_chats
from pipelines.generate.drafts import Drafts, FactDraft
from pipelines.generate.events import TYPE_CODE, Behaviour, EventTable, TextRows, merge
from pipelines.generate.facts import Profile
from pipelines.generate.lexicon import CATEGORIES, CATEGORY_NAMES
from pipelines.generate.malformed import MALFORMED_KINDS, Malformed, malformed_record
from pipelines.generate.texts import add_review, add_search_burst, vocabulary
from pipelines.generate.truth import (
    Counts,
    Duplicate,
    Fact,
    MalformedLine,
    Mention,
    Pii,
    Truth,
    UserTruth,
    format_time,
)

_DAY_MS = 86_400_000
_REVIEW_DELAY_MS = (2 * 3_600_000, 6 * _DAY_MS)
# Half the duplicates come back within a few hundred lines (a redelivery), half anywhere later.
_NEAR_DUPLICATE_LINES = 200


@dataclass(frozen=True)
class EventIds:
    """Event ids: the seed, then the row number in time order ("e7-000000042")."""

    seed: int
    rows: int

    @property
    def prefix(self) -> str:
        """Datasets of different seeds never share an event id."""
        return f"e{self.seed}-"

    @property
    def width(self) -> int:
        """Digits of the row number."""
        return max(9, len(str(self.rows)))

    def __call__(self, row: int) -> str:
        return f"{self.prefix}{row:0{self.width}d}"


@dataclass(frozen=True)
class Dataset:
    """A generated dataset, ready to write."""

    config: GenerateConfig
    table: EventTable
    event_id: EventIds
    users: Users
    catalog: Catalog
    line_refs: np.ndarray  # per output line: a row of `table`, or -(k + 1) for malformed[k]
    malformed: list[Malformed]
    truth: Truth
    queries: list[dict[str, object]]


def utc_offset_text(minutes: int) -> str:
    """ "+05:30" for 330."""
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


class _Profiles:
    """Per-user tastes as categories, built on first use (most users never need one)."""

    def __init__(self, users: Users) -> None:
        self.users = users
        self.cache: dict[int, Profile] = {}

    def __getitem__(self, user: int) -> Profile:
        if user not in self.cache:
            liked = [CATEGORIES[c] for c in np.flatnonzero(self.users.liked[user])]
            disliked = [CATEGORIES[c] for c in np.flatnonzero(self.users.disliked[user])]
            self.cache[user] = Profile(liked, disliked)
        return self.cache[user]


def _chats_and_bursts(
    config: GenerateConfig,
    rng: np.random.Generator,
    text_rng: random.Random,
    profiles: _Profiles,
    window: tuple[int, int],
) -> tuple[TextRows, Drafts, np.ndarray]:
    """Chat sessions of some users and search bursts of others; also returns who chats."""
    rows, drafts = TextRows(), Drafts()
    chatting = np.flatnonzero(rng.random(config.users) < config.chat_user_share)
    with_pii = rng.random(len(chatting)) < config.pii_user_share
    for user, pii in zip(chatting.tolist(), with_pii.tolist(), strict=True):
        add_chats(
            rows,
            drafts,
            text_rng,
            user,
            profiles[user],
            window,
            config.chat_sessions,
            with_pii=pii,
            typo_rate=config.typo_rate,
        )
    for user in np.flatnonzero(rng.random(config.users) < config.burst_user_share).tolist():
        add_search_burst(rows, drafts, text_rng, user, profiles[user], window)
    return rows, drafts, chatting


def _reviews(
    config: GenerateConfig,
    rng: np.random.Generator,
    text_rng: random.Random,
    behaviour: Behaviour,
    catalog: Catalog,
    profiles: _Profiles,
    rows: TextRows,
    drafts: Drafts,
    end_ms: int,
) -> int:
    """Reviews of some purchases, a few hours to days later; returns how many."""
    purchases = np.flatnonzero(behaviour.type == TYPE_CODE["purchase"])
    reviewed = purchases[rng.random(len(purchases)) < config.review_rate]
    delays = rng.integers(*_REVIEW_DELAY_MS, size=len(reviewed))
    for row, delay in zip(reviewed.tolist(), delays.tolist(), strict=True):
        user, item = int(behaviour.user[row]), int(behaviour.item[row])
        at = min(int(behaviour.ts[row]) + delay, end_ms - 1)
        category = int(catalog.category[item])
        add_review(
            rows, drafts, text_rng, user, profiles[user], item, catalog.noun[item], category, at
        )
    return len(reviewed)


def build_dataset(config: GenerateConfig) -> Dataset:
    """Generate everything `config` asks for."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(8)]
    text_rng = random.Random(config.seed)
    window = (_ms(config.end) - config.days * _DAY_MS, _ms(config.end))
    catalog = build_catalog(streams[0], random.Random(config.seed + 1), config.items)
    users = build_users(streams[1], config.users)
    profiles = _Profiles(users)
    vocab = vocabulary()
    rows, drafts, chatting = _chats_and_bursts(config, streams[2], text_rng, profiles, window)
    budget = max(config.total_events - len(rows), 0)
    behaviour = browse(
        streams[3],
        users,
        catalog,
        vocab,
        budget,
        window,
        search_share=config.search_share,
        tag_rate=config.tag_rate,
    )
    reviews = _reviews(
        config, streams[4], text_rng, behaviour, catalog, profiles, rows, drafts, window[1]
    )
    # Reviews take the place of as many views, so the dataset keeps its size.
    behaviour = drop_views(streams[5], behaviour, reviews)

    table = merge(behaviour, rows, vocab.texts, streams[6])
    event_id = EventIds(config.seed, len(table))
    lines = _line_order(streams[7], len(table), config)
    line_refs = lines.refs
    malformed = _malformed_lines(int((line_refs < 0).sum()), users, catalog, window, config.seed)
    facts = _facts(table, event_id, users, drafts.facts)

    def evidence(row: int) -> str:
        return event_id(int(table.text_row_index[row]))

    truth = Truth(
        contract_version=CONTRACT_VERSION,
        seed=config.seed,
        format=config.format,
        start=_time(window[0]),
        end=_time(window[1]),
        counts=_counts(table, line_refs, len(lines.duplicate_at), malformed),
        users=_user_truth(users, set(chatting.tolist())),
        facts=tuple(fact for fact, _ in facts),
        distractors=tuple(
            Mention(evidence(d.row), users.ids[d.user], d.text, d.mentions, d.reason)
            for d in drafts.distractors
        ),
        non_facts=tuple(
            Mention(evidence(d.row), users.ids[d.user], d.text, d.mentions, d.reason)
            for d in drafts.non_facts
        ),
        pii=tuple(Pii(evidence(p.row), users.ids[p.user], p.kind, p.value) for p in drafts.pii),
        malformed=tuple(_malformed_truth(line_refs, malformed)),
        duplicates=tuple(_duplicates(lines, event_id)),
    )
    queries = [_query(fact, query) for fact, query in facts]
    return Dataset(config, table, event_id, users, catalog, line_refs, malformed, truth, queries)


@dataclass(frozen=True)
class _LineOrder:
    refs: np.ndarray  # per line: a row, or -(k + 1) for malformed line k
    duplicate_at: np.ndarray  # lines that repeat an earlier one
    original_at: np.ndarray  # the line each of them repeats


def _line_order(rng: np.random.Generator, n: int, config: GenerateConfig) -> _LineOrder:
    """Rows in time order, duplicates after their original, malformed lines anywhere."""
    duplicated = np.flatnonzero(rng.random(n) < config.duplicate_rate)
    near = rng.random(len(duplicated)) < 0.5
    lag = np.where(
        near,
        rng.integers(1, _NEAR_DUPLICATE_LINES, size=len(duplicated)),
        rng.random(len(duplicated)) * (n - duplicated),
    )
    n_malformed = 0
    if config.format == "jsonl" and config.malformed_rate > 0:
        n_malformed = max(round(config.malformed_rate * n), len(MALFORMED_KINDS))
    keys = np.concatenate(
        [np.arange(n, dtype=np.float64), duplicated + 0.5 + lag, rng.random(n_malformed) * n]
    )
    refs = np.concatenate(
        [np.arange(n, dtype=np.int64), duplicated, -(np.arange(n_malformed, dtype=np.int64) + 1)]
    )
    order = np.argsort(keys, kind="stable")  # order[line] = index into keys / refs
    line_of = np.empty_like(order)
    line_of[order] = np.arange(len(order))
    return _LineOrder(refs[order], line_of[n : n + len(duplicated)], line_of[duplicated])


def _malformed_lines(
    count: int, users: Users, catalog: Catalog, window: tuple[int, int], seed: int
) -> list[Malformed]:
    """`count` malformed lines; every kind at least once when count allows."""
    rng = random.Random(seed + 2)
    extra = max(count - len(MALFORMED_KINDS), 0)
    kinds = list(MALFORMED_KINDS) + rng.choices(MALFORMED_KINDS, k=extra)
    rng.shuffle(kinds)
    prefix = EventIds(seed, 0).prefix
    lines = []
    for number, kind in enumerate(kinds[:count]):
        user, item = rng.choice(users.ids), rng.choice(catalog.item_ids)
        at = rng.randrange(*window)
        lines.append(malformed_record(rng, kind, f"{prefix}m{number:07d}", user, item, at))
    return lines


def _counts(
    table: EventTable, line_refs: np.ndarray, duplicated: int, malformed: list[Malformed]
) -> Counts:
    per_type = np.bincount(table.type, minlength=len(SIGNAL_TYPES))
    return Counts(
        lines=len(line_refs),
        valid_unique=len(table),
        by_type={name: int(per_type[code]) for code, name in enumerate(SIGNAL_TYPES)},
        duplicates=duplicated,
        malformed=dict(sorted(Counter(line.kind for line in malformed).items())),
    )


def _per_user(mask: np.ndarray) -> list[list[str]]:
    """For each user (row of a users x categories mask): the categories set, in order."""
    rows, columns = np.nonzero(mask)
    names = [CATEGORY_NAMES[c] for c in columns.tolist()]
    ends = np.cumsum(np.bincount(rows, minlength=len(mask))).tolist()
    return [names[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _user_truth(users: Users, chatting: set[int]) -> tuple[UserTruth, ...]:
    liked, disliked = _per_user(users.liked), _per_user(users.disliked)
    rows, columns = np.nonzero(users.liked)
    weights = np.round(users.tastes[rows, columns], 4).tolist()
    offsets = {minutes: utc_offset_text(minutes) for minutes in set(users.offset_min.tolist())}
    out = []
    done = 0
    for user, (user_id, minutes) in enumerate(
        zip(users.ids, users.offset_min.tolist(), strict=True)
    ):
        names = liked[user]
        tastes = dict(zip(names, weights[done : done + len(names)], strict=True))
        done += len(names)
        out.append(
            UserTruth(user_id, tastes, tuple(disliked[user]), offsets[minutes], user in chatting)
        )
    return tuple(out)


def _malformed_truth(line_refs: np.ndarray, malformed: list[Malformed]) -> list[MalformedLine]:
    positions = np.flatnonzero(line_refs < 0)
    numbers = (-line_refs[positions] - 1).tolist()
    return [
        MalformedLine(position, malformed[k].kind, malformed[k].field)
        for position, k in zip(positions.tolist(), numbers, strict=True)
    ]


def _duplicates(lines: _LineOrder, event_id: EventIds) -> list[Duplicate]:
    rows = lines.refs[lines.duplicate_at]
    return [
        Duplicate(position, event_id(row), original)
        for position, row, original in zip(
            lines.duplicate_at.tolist(), rows.tolist(), lines.original_at.tolist(), strict=True
        )
    ]


def _facts(
    table: EventTable, event_id: EventIds, users: Users, drafts: list[FactDraft]
) -> list[tuple[Fact, str]]:
    """Final facts with their queries: evidence merged per (user, kind, text), times from the
    sorted table, and the facts of one slot chained (each ends where the next begins)."""
    merged: dict[tuple[int, str, str], FactDraft] = {}
    for draft in drafts:
        key = (draft.user, draft.kind, draft.text)
        if key in merged and draft.kind in ("preference", "dislike"):
            merged[key].rows.extend(draft.rows)
        else:
            merged.setdefault(key, draft)
    pending: list[tuple[int, Fact, str]] = []
    for draft in merged.values():
        final = np.sort(table.text_row_index[draft.rows])
        first_ms, last_ms = int(table.ts[final[0]]), int(table.ts[final[-1]])
        valid_from_ms = first_ms if draft.valid_from_ms is None else draft.valid_from_ms
        expires_ms = None if draft.expires_after_ms is None else last_ms + draft.expires_after_ms
        fact = Fact(
            fact_id="",
            user_id=users.ids[draft.user],
            kind=draft.kind,
            text=draft.text,
            stated_event_ids=tuple(event_id(int(row)) for row in final),
            stated_at=_time(first_ms),
            valid_from=_time(valid_from_ms),
            valid_from_tolerance_days=draft.tolerance_days,
            speaker="user",
            source=draft.source,
            slot=draft.slot,
            value=draft.value,
            time_phrase=draft.time_phrase,
            time_direction=draft.direction,
            expires_at=None if expires_ms is None else _time(expires_ms),
        )
        pending.append((draft.user, fact, draft.query))
    pending.sort(key=lambda entry: (entry[0], entry[1].stated_at, entry[1].text))
    facts = [replace(fact, fact_id=f"f{n:06d}") for n, (_, fact, _) in enumerate(pending)]
    chains: dict[tuple[str, str], list[int]] = {}
    for index, fact in enumerate(facts):
        if fact.slot is not None:
            chains.setdefault((fact.user_id, fact.slot), []).append(index)
    for chain in chains.values():
        chain.sort(key=lambda index: facts[index].valid_from)
        for earlier, later in pairwise(chain):
            facts[earlier] = replace(
                facts[earlier], valid_to=facts[later].valid_from, superseded_by=facts[later].fact_id
            )
    return [(fact, query) for fact, (_, _, query) in zip(facts, pending, strict=True)]


def _query(fact: Fact, query: str) -> dict[str, object]:
    """A memory query for one fact, asked at a time the fact is true and known."""
    as_of = max(_ms(fact.stated_at), _ms(fact.valid_from)) + 60_000
    return {
        "id": f"q-{fact.fact_id}",
        "user_id": fact.user_id,
        "query": query,
        "k": 10,
        "fact_id": fact.fact_id,
        "relevant_event_ids": list(fact.stated_event_ids),
        "as_of": format_time(_time(as_of)),
        "kind": fact.kind,
    }
