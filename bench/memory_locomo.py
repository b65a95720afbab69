# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Benchmark: memory search on LoCoMo's real long conversations (issue 14).

Every turn of a conversation goes in through the product path (`engram ingest --memories`:
normalize, store, extract, embed, lifecycle, Milvus) and every question of categories 1-4 with
evidence is asked through `MemoryService.search`, the call behind the HTTP API's search. The
ranked memories are expanded into their source turns, first occurrence kept, and scored with the
measure of the data's README: recall_any@k (an evidence turn among the first k distinct turns)
and recall_all@k (all of them), k = 5, 10, 20, any@10 by category. In the same run, on the same
turns and questions: BM25 (plain word tokens, as the README's figure; and with Engram's own terms,
memory.lexical), all-MiniLM-L6-v2 cosine, and the reciprocal rank fusion (k = 60) of each BM25
with the cosine.

How a conversation maps onto Engram: one conversation is one memory owner (`user_id` = its
sample id) and both people's turns are that owner's history, so each turn is a `message` signal
without `context.speaker`, its text `"<speaker>: <text>"` (a shared photo's caption appended as
`" [shares a photo of <caption>]"`), `ts` the session's date plus 30 s per turn and `event_id`
`<user_id>:<dia_id>`. The contract's speakers (user, assistant, system, other) cannot name two
people, and marking one of them `other` would drop half the evidence: Engram never remembers
another speaker's turns.

    .venv/bin/python bench/memory_locomo.py --data ../shared/data/locomo-dev [--json]
    .venv/bin/python bench/memory_locomo.py --data ../shared/data/locomo-dev --generated 1

`--generated SEED` adds the generator's two-person conversations (pipelines.generate.dialogues,
the same JSON shape, `--conversations` of them) to the same run: ingested with the real ones into
the same store, every system measured on each set apart, so the two tables compare.

A temporary ENGRAM_HOME holds the offline store and the embedded Milvus this run starts and
stops (`--home DIR` keeps them, and a second run with the same DIR searches without ingesting).
`--ablations` asks every question again with one part of the ranking off at a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and bench/memory.py would
# shadow the `memory` package: the project's root takes its place.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import json
import logging
import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from core.settings import Settings
from memory.lexical import BM25
from memory.search import DEFAULT_WEIGHTS
from memory.service import MemoryService, build_memory_service

KS = (5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
TURN_SPACING = timedelta(seconds=30)
RRF_K = 60
# Memories asked per question: enough that their source turns fill the deepest k.
SEARCH_K = 60
_PLAIN_WORD = re.compile(r"\w+")
# `--ablations`: Engram with one part of the ranking off (memory.search.Weights).
ABLATIONS = {
    "engram_without_neighbours": {"context": 0.0},
    "engram_without_reply_vectors": {"reply": 0.0},
    "engram_without_named_speakers": {"named": 0.0},
    "engram_without_periods": {"period": 0.0},
    "engram_without_lexical": {"dense": 1.0, "lexical": 0.0},
}


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation, as the signal it becomes."""

    event_id: str
    dia_id: str
    ts: datetime
    text: str


@dataclass(frozen=True)
class Question:
    """A question of categories 1-4 with its evidence turns (as event ids)."""

    user_id: str
    text: str
    category: int
    evidence: frozenset[str]


def session_time(text: str) -> datetime:
    """ "1:56 pm on 8 May, 2023" as a UTC datetime."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def load_locomo(path: Path) -> tuple[dict[str, list[Turn]], list[Question]]:
    """The turns of each conversation (keyed by user id, in order) and the scored questions, from
    a LoCoMo-shaped JSON file or a directory holding locomo-dev.json."""
    if path.is_dir():
        path = path / "locomo-dev.json"
    return read_records(json.loads(path.read_text()))


def read_records(records: list[dict[str, Any]]) -> tuple[dict[str, list[Turn]], list[Question]]:
    """The turns and scored questions of LoCoMo records (a parsed locomo-dev.json)."""
    turns: dict[str, list[Turn]] = {}
    questions: list[Question] = []
    for record in records:
        user_id = record["sample_id"]
        conversation = record["conversation"]
        mine: list[Turn] = []
        number = 1
        while f"session_{number}" in conversation:
            start = session_time(conversation[f"session_{number}_date_time"])
            for index, turn in enumerate(conversation[f"session_{number}"]):
                text = f"{turn['speaker']}: {turn['text']}"
                if turn.get("blip_caption"):
                    text += f" [shares a photo of {turn['blip_caption']}]"
                event_id = f"{user_id}:{turn['dia_id']}"
                mine.append(Turn(event_id, turn["dia_id"], start + index * TURN_SPACING, text))
            number += 1
        turns[user_id] = mine
        for qa in record["qa"]:
            # A few evidence entries hold two ids in one string ("D8:6; D9:17").
            evidence = {
                f"{user_id}:{dia_id}"
                for entry in qa.get("evidence", [])
                for dia_id in re.split(r"[;,\s]+", entry)
                if dia_id
            }
            if qa["category"] in CATEGORIES and evidence:
                questions.append(
                    Question(user_id, qa["question"], qa["category"], frozenset(evidence))
                )
    return turns, questions


def write_signals(turns: dict[str, list[Turn]], target: Path) -> None:
    """The turns as contract signals, one JSON object a line."""
    with target.open("w") as out:
        for user_id, mine in turns.items():
            for turn in mine:
                signal = {
                    "event_id": turn.event_id,
                    "user_id": user_id,
                    "ts": turn.ts.isoformat().replace("+00:00", "Z"),
                    "type": "message",
                    "text": turn.text,
                }
                out.write(json.dumps(signal) + "\n")


# --- the measure -------------------------------------------------------------------------------


def first_distinct(events: Iterator[str] | Sequence[str], k: int) -> list[str]:
    """The first `k` distinct event ids, in order."""
    seen: dict[str, None] = {}
    for event in events:
        seen.setdefault(event, None)
        if len(seen) == k:
            break
    return list(seen)


class Scores:
    """recall_any@k, recall_all@k and any@10 by category of one system."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, dict[str, bool]]] = []

    def add(self, question: Question, ranked_events: Sequence[str]) -> None:
        """Score one question's ranked source events."""
        row: dict[str, bool] = {}
        for k in KS:
            top = set(first_distinct(ranked_events, k))
            row[f"any@{k}"] = bool(question.evidence & top)
            row[f"all@{k}"] = question.evidence <= top
        self._rows.append((question.category, row))

    def summary(self) -> dict[str, Any]:
        """The means, overall and any@10 by category."""
        names = [f"{kind}@{k}" for k in KS for kind in ("any", "all")]
        out: dict[str, Any] = {
            name: round(float(np.mean([row[name] for _, row in self._rows])), 3) for name in names
        }
        by_category = {
            label: [row["any@10"] for c, row in self._rows if c == cat]
            for cat, label in CATEGORIES.items()
        }
        out["any@10_by_category"] = {
            label: round(float(np.mean(hits)), 3) if hits else None
            for label, hits in by_category.items()
        }
        out["questions"] = len(self._rows)
        return out


# --- the baselines -----------------------------------------------------------------------------


class PlainBM25:
    """Okapi BM25 (k1 1.5, b 0.75) on lower-cased word tokens, no stop words: the README's."""

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self._docs = [Counter(_PLAIN_WORD.findall(text.lower())) for text in documents]
        lengths = np.array([sum(doc.values()) for doc in self._docs], dtype=np.float64)
        self._norm = k1 * (1.0 - b + b * lengths / max(float(lengths.mean()), 1.0))
        self._k1 = k1
        self._df: Counter[str] = Counter()
        for doc in self._docs:
            self._df.update(doc.keys())

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """One score per document."""
        out = np.zeros(len(self._docs))
        n = len(self._docs)
        for term in set(_PLAIN_WORD.findall(query.lower())):
            df = self._df.get(term, 0)
            if not df:
                continue
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            tf = np.array([doc.get(term, 0) for doc in self._docs], dtype=np.float64)
            out += idf * tf * (self._k1 + 1.0) / (tf + self._norm)
        return out


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[int]:
    """Reciprocal rank fusion of rankings of the same documents."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for position, doc in enumerate(ranking):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + position + 1)
    return sorted(fused, key=lambda doc: (-fused[doc], doc))


def order(scores: npt.NDArray[np.float64]) -> list[int]:
    """Document positions by descending score (stable)."""
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def baselines(
    service: MemoryService, turns: dict[str, list[Turn]], questions: Sequence[Question]
) -> dict[str, Scores]:
    """The baselines' scores on the same turns and questions, with the service's embedder."""
    systems = ("bm25", "bm25_engram_terms", "minilm", "rrf", "rrf_engram_terms")
    scores = {name: Scores() for name in systems}
    indexes = {
        user: (
            service.embedder.embed([turn.text for turn in mine]),
            PlainBM25([turn.text for turn in mine]),
            BM25([turn.text for turn in mine]),
        )
        for user, mine in turns.items()
    }
    vectors = service.embedder.embed([question.text for question in questions])
    for question, vector in zip(questions, vectors, strict=True):
        matrix, plain, engram = indexes[question.user_id]
        ids = [turn.event_id for turn in turns[question.user_id]]
        ranked = {
            "bm25": order(plain.scores(question.text)),
            "bm25_engram_terms": order(engram.scores(question.text)),
            "minilm": order((matrix @ vector).astype(np.float64)),
        }
        ranked["rrf"] = rrf([ranked["bm25"], ranked["minilm"]])
        ranked["rrf_engram_terms"] = rrf([ranked["bm25_engram_terms"], ranked["minilm"]])
        for name, positions in ranked.items():
            scores[name].add(question, [ids[i] for i in positions])
    return scores


# --- Engram --------------------------------------------------------------------------------------


def engram_scores(
    service: MemoryService, questions: Sequence[Question], k: int = SEARCH_K
) -> tuple[Scores, list[float]]:
    """Engram's scores: each question through MemoryService.search, hits expanded into their
    source events in order; and each search's latency in seconds."""
    scores = Scores()
    latencies: list[float] = []
    for question in questions:
        started = time.perf_counter()
        hits = service.search(question.user_id, question.text, k=k)
        latencies.append(time.perf_counter() - started)
        scores.add(question, [event for hit in hits for event in hit.memory.source_event_ids])
    return scores, latencies


@contextmanager
def engram_home(keep: Path | None) -> Iterator[Path]:
    """`keep`, or a temporary ENGRAM_HOME removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-locomo-") as tmp:
        yield Path(tmp)


def run(
    data: Path | None,
    keep: Path | None,
    on_line: Callable[[str], None],
    ablations: bool = False,
    generated: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Ingest, search, score; the results as plain values. `generated` (seed, conversations)
    adds generated conversations to the same store, measured apart under "generated"."""
    from core.stores.services import stop_local_services
    from pipelines.batch import run_ingest
    from pipelines.generate.dialogues import dialogues

    sets: dict[str, tuple[dict[str, list[Turn]], list[Question]]] = {}
    if data is not None:
        sets["locomo"] = load_locomo(data)
    if generated is not None:
        seed, count = generated
        sets["generated"] = read_records(dialogues(seed, count))
    turns = {user: mine for set_turns, _ in sets.values() for user, mine in set_turns.items()}
    results: dict[str, Any] = {
        "data": str(data),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if generated is not None:
        results["generated"] = {"seed": generated[0], "conversations": generated[1]}
    with engram_home(keep) as home:
        settings = Settings(engram_home=home, milvus_uri=None, redis_url=None)
        try:
            signals = home / "locomo-signals.jsonl"
            if not signals.exists():
                write_signals(turns, signals)
                started = time.perf_counter()
                ingest = run_ingest(settings, signals, memories=True)
                results["ingest"] = {
                    "seconds": round(time.perf_counter() - started, 1),
                    "accepted": ingest.accepted,
                    "memories": ingest.memories,
                }
                on_line(f"ingested {ingest.accepted} turns: {ingest.memories}")
            service = build_memory_service(settings)
            try:
                for name, (set_turns, questions) in sets.items():
                    on_line(f"{name}: searching {len(questions)} questions")
                    results[name] = results.get(name, {}) | _measure(
                        service, set_turns, questions, ablations and name == "locomo"
                    )
            finally:
                service.close()
        finally:
            if keep is None:
                stop_local_services(settings)
    if "locomo" in results:  # the figures the first version of this bench printed at the top
        results.update(results.pop("locomo"))
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _measure(
    service: MemoryService,
    turns: dict[str, list[Turn]],
    questions: Sequence[Question],
    ablations: bool,
) -> dict[str, Any]:
    """Every system on one set of conversations."""
    engram, latencies = engram_scores(service, questions)
    table = {"engram": engram.summary()}
    table.update({name: s.summary() for name, s in baselines(service, turns, questions).items()})
    # The API's default k, every index kept and every query embedding cached: what the search
    # adds to the embedding.
    _, warm = engram_scores(service, questions, k=10)
    for name, change in ABLATIONS.items() if ablations else ():
        service.weights = replace(DEFAULT_WEIGHTS, **change)
        table[name] = engram_scores(service, questions)[0].summary()
    service.weights = DEFAULT_WEIGHTS
    return {
        "conversations": len(turns),
        "turns": sum(len(mine) for mine in turns.values()),
        "questions": len(questions),
        "memories_by_kind": _kinds(service, list(turns)),
        "recall": table,
        "search_latency_ms": {
            f"k={SEARCH_K}, first searches": _percentiles(latencies),
            "k=10, indexes kept, query embeddings cached": _percentiles(warm),
        },
    }


def _percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "p50": round(float(np.percentile(ms, 50)), 1),
        "p99": round(float(np.percentile(ms, 99)), 1),
    }


def _kinds(service: MemoryService, users: list[str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for user in users:
        counts.update(memory.kind for memory in service.list(user, as_of=datetime.now(UTC)))
    return dict(sorted(counts.items()))


def print_table(results: dict[str, Any]) -> None:
    """The figures as a text table, one per set of conversations."""
    if "recall" in results:
        _print_set("LoCoMo", results)
    if "generated" in results:
        generated = results["generated"]
        print()
        _print_set(f"generated (seed {generated['seed']})", generated)
    print(f"load average {results['load_average_at_start']} -> {results['load_average_at_end']}")


def _print_set(title: str, figures: dict[str, Any]) -> None:
    columns = [f"{kind}@{k}" for k in KS for kind in ("any", "all")]
    labels = list(CATEGORIES.values())
    print(f"{title:30s}" + "".join(f"{c:>12s}" for c in columns + labels))
    for name, row in figures["recall"].items():
        cells = [row[c] for c in columns] + [row["any@10_by_category"][c] for c in labels]
        print(f"{name:30s}" + "".join("           -" if v is None else f"{v:12.3f}" for v in cells))
    print(
        f"questions {figures['questions']}, turns {figures['turns']}, "
        f"memories {figures['memories_by_kind']}"
    )
    for name, latency in figures["search_latency_ms"].items():
        print(f"search latency ({name}): p50 {latency['p50']} ms, p99 {latency['p99']} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="the locomo-dev directory")
    parser.add_argument(
        "--generated", type=int, metavar="SEED", help="also generated conversations of this seed"
    )
    parser.add_argument(
        "--conversations", type=int, default=5, help="how many generated conversations"
    )
    parser.add_argument("--home", type=Path, help="keep ENGRAM_HOME (and its Milvus) here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--ablations", action="store_true", help="Engram again with each part of the ranking off"
    )
    args = parser.parse_args()
    if args.data is None and args.generated is None:
        parser.error("give --data, --generated or both")
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    results = run(
        args.data,
        args.home,
        lambda line: print(line, file=sys.stderr, flush=True),
        ablations=args.ablations,
        generated=None if args.generated is None else (args.generated, args.conversations),
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
