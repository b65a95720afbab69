"""Optional extractor that asks an OpenAI-compatible chat-completions endpoint for the facts.

Not used by default: the runner builds it only when a base URL and model are configured. It has
the same interface and the same guarantees as the rule extractor where they do not depend on the
model: only the user's own messages and reviews are sent (an assistant's words never become
facts about the user), episodes are built locally, times are resolved locally from the phrase the
model quotes (memory.timeparse), and intents expire as in memory.extract. Transient failures
(connection errors, timeouts, 429 and 5xx) are retried a bounded number of times, then raised.
Fact entries that break the requested schema are skipped; a reply that is not JSON is an error.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError, ServiceUnavailableError
from memory.extract import (
    EPISODE_TYPES,
    TextSignal,
    episode_memory,
    fact_memory,
    intent_expiry,
    is_user_turn,
)
from memory.patterns import Fact
from memory.records import FACT_KINDS, Memory
from memory.timeparse import Direction, first_time

SYSTEM_PROMPT = """You extract durable facts about a user from one message the user wrote.
Return JSON: {"facts": [{"kind": ..., "text": ..., "slot": ..., "value": ..., "time_phrase": ...,
"tense": ..., "confidence": ...}]} and nothing else. An empty list is a good answer.
- kind: preference | dislike | attribute | relationship | life_event | intent
- text: a short canonical statement without a subject: "Likes hiking", "Dislikes horror movies",
  "Is vegetarian", "Has a dog named Max", "Sister is Anna", "Moved to Seattle", "Had a baby",
  "Started a new job at Acme", "Wants to buy a tent".
- slot/value only for facts that replace older ones, else null: location, hometown, employer
  ("none" after leaving a job), occupation, diet (vegetarian, vegan, pescatarian, keto, paleo,
  omnivore), relationship_status, partner, mother, father, age.
- time_phrase: the words in the message that say when it happened or will ("last week",
  "next spring"), copied exactly, or null. tense: past | future | state.
- confidence: 0 to 1; lower it for hedges ("I think", "maybe").
Only facts the user states about themselves. Nothing from questions, hypotheticals ("if I ever
moved to Paris"), wishes, or things said about other people (except who they are to the user)."""


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to call the model; the key is sent as a bearer token when given."""

    base_url: str  # e.g. "http://127.0.0.1:8000/v1"
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 2
    backoff_s: float = 0.5
    json_mode: bool = True  # send response_format={"type": "json_object"}


_TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMExtractor:
    """Facts by a chat model, episodes and times by Engram; one request per user text."""

    def __init__(self, config: LLMConfig) -> None:
        if not config.base_url or not config.model:
            raise ConfigError("llm", "base URL and model are both required")
        self._config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"

    def extract(self, signals: Sequence[TextSignal]) -> list[Memory]:
        """Episodes and model-extracted facts of the user's own messages and reviews."""
        memories: list[Memory] = []
        for signal in signals:
            if signal.type not in EPISODE_TYPES or not is_user_turn(signal):
                continue
            episode = episode_memory(signal)
            if episode is None:
                continue
            memories.append(episode)
            memories.extend(self._facts(signal))
        return memories

    def _facts(self, signal: TextSignal) -> list[Memory]:
        reply = self._complete(signal)
        memories: list[Memory] = []
        seen: set[tuple[str, str]] = set()
        for entry in reply.get("facts") or []:
            parsed = _parse_fact(entry)
            if parsed is None:
                continue
            fact, confidence, phrase, tense = parsed
            if (fact.kind, fact.text.casefold()) in seen:
                continue
            seen.add((fact.kind, fact.text.casefold()))
            direction: Direction = (
                "future" if tense == "future" or fact.kind == "intent" else "past"
            )
            when = first_time(phrase, signal.ts, direction) if phrase else None
            if fact.kind == "intent":
                target = when if when is not None and when > signal.ts else None
                expiry = intent_expiry(signal.ts, target)
                memories.append(fact_memory(signal, fact, confidence, signal.ts, expiry))
            else:
                memories.append(fact_memory(signal, fact, confidence, when or signal.ts))
        return memories

    def _request_body(self, signal: TextSignal) -> bytes:
        message = {"text": signal.text, "type": signal.type, "event_time": signal.ts.isoformat()}
        body: dict[str, Any] = {
            "model": self._config.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(message, ensure_ascii=False)},
            ],
        }
        if self._config.json_mode:
            body["response_format"] = {"type": "json_object"}
        return json.dumps(body).encode()

    def _complete(self, signal: TextSignal) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        request = urllib.request.Request(
            self._url, data=self._request_body(signal), headers=headers, method="POST"
        )
        last_error = ""
        for attempt in range(self._config.max_retries + 1):
            if attempt:
                time.sleep(self._config.backoff_s * 2 ** (attempt - 1))
            try:
                with urllib.request.urlopen(request, timeout=self._config.timeout_s) as response:
                    payload = response.read()
                break
            except urllib.error.HTTPError as error:
                if error.code in (401, 403):
                    raise ConfigError("llm_api_key", f"rejected by {self._url}") from error
                if error.code not in _TRANSIENT_STATUS:
                    raise ServiceUnavailableError("llm", f"HTTP {error.code}") from error
                last_error = f"HTTP {error.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                last_error = str(getattr(error, "reason", error))
        else:
            raise ServiceUnavailableError(
                "llm", f"{last_error} after {self._config.max_retries + 1} attempts"
            )
        return _reply_json(payload)


def _reply_json(payload: bytes) -> dict[str, Any]:
    """The JSON object the model wrote, from a chat-completions response body."""
    try:
        content = json.loads(payload)["choices"][0]["message"]["content"]
        text = content.strip()
        if text.startswith("```"):
            # Models often fence JSON even when asked not to.
            text = text.strip("`").removeprefix("json").strip()
        reply = json.loads(text)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise ServiceUnavailableError("llm", f"reply is not the JSON asked for: {error}") from error
    if not isinstance(reply, dict):
        raise ServiceUnavailableError("llm", "reply is not a JSON object")
    return reply


def _parse_fact(entry: object) -> tuple[Fact, float, str | None, str] | None:
    """A fact entry as (fact, confidence, time phrase, tense), or None if it breaks the schema."""
    if not isinstance(entry, dict):
        return None
    kind, text = entry.get("kind"), entry.get("text")
    if kind not in FACT_KINDS or not isinstance(text, str) or not 0 < len(text.strip()) <= 200:
        return None
    slot, value = entry.get("slot"), entry.get("value")
    slot = slot.strip().lower() if isinstance(slot, str) and slot.strip() else None
    value = value.strip() if isinstance(value, str) and value.strip() else None
    if slot is not None and value is None:
        slot = None
    raw_confidence = entry.get("confidence", 0.7)
    confidence = raw_confidence if isinstance(raw_confidence, int | float) else 0.7
    phrase = entry.get("time_phrase")
    tense = entry.get("tense") if entry.get("tense") in ("past", "future", "state") else "past"
    text = " ".join(text.split())
    return (
        Fact(kind, text[0].upper() + text[1:], slot, value),
        max(0.0, min(1.0, float(confidence))),
        phrase if isinstance(phrase, str) and phrase.strip() else None,
        str(tense),
    )
