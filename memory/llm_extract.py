"""Facts by a chat model behind an OpenAI-compatible chat-completions API, the rules as fallback.

Off by default: `llm_config(settings)` is None unless ENGRAM_LLM_BASE_URL is set, and
memory.service.build_memory_service then keeps the rules. When it is set, the batch ingest, the
stream consumer and the API's synchronous signals all extract through `LLMExtractor`.

What stays Engram's whatever the model says: only the user's own messages and reviews are sent
(an assistant's words never become facts about the user); episodes are built locally; times are
resolved locally from the phrase the model quotes (memory.timeparse); intents expire as in
memory.extract. One request per user text, `concurrency` of them in flight.

Failures never lose a text's facts; the rules read that text instead, and `ExtractReport` counts
it (docs/memory.md, "Extraction by a model"):
- the reply is not JSON, breaks the schema, or the request is refused as it stands (400, 413,
  422): that text goes to the rules; entries of a good reply that break the schema are skipped;
- the endpoint fails (timeout, unreachable, 5xx or 429 after bounded retries, a Retry-After
  longer than `max_wait_s`, 401/403, 404): that text goes to the rules and the model is left
  alone for a cool-down (at least `cooldown_s`, or the Retry-After), during which every text
  goes to the rules; then one request probes it, and its answer closes the breaker.
Timeouts are not retried: the wait has been spent, and the breaker takes over.
"""

from __future__ import annotations

import email.message
import email.utils
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from core.errors import ConfigError, ModelReplyError, ServiceUnavailableError
from core.settings import Settings
from memory.extract import RuleExtractor, TextSignal, episode_memory, fact_memory, intent_expiry
from memory.patterns import Fact
from memory.records import FACT_KINDS, Memory
from memory.timeparse import Direction, first_time

log = logging.getLogger(__name__)

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

# Worth asking again: the server is busy, restarting or rate-limiting.
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# The request itself is refused (too long, malformed for this server): only this text is hit.
_REFUSED_STATUS = frozenset({400, 413, 422})
_MAX_TEXT_CHARS = 200  # a fact's canonical text; longer is not a fact but a paraphrase


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to call the model; the key is sent as a bearer token and never shown."""

    base_url: str  # e.g. "http://127.0.0.1:8000/v1"
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0  # socket timeout of one request
    max_retries: int = 2  # further attempts after a transient failure
    backoff_s: float = 0.5  # first wait between attempts, doubled each time
    max_wait_s: float = 10.0  # longest Retry-After waited for; a longer one fails over at once
    cooldown_s: float = 30.0  # how long the rules answer alone after the endpoint failed
    concurrency: int = 4  # requests in flight at once
    json_mode: bool = True  # send response_format={"type": "json_object"}


def llm_config(settings: Settings) -> LLMConfig | None:
    """The model's configuration from ENGRAM_LLM_*, or None when ENGRAM_LLM_BASE_URL is unset."""
    url = (settings.engram_llm_base_url or "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError("engram_llm_base_url", f"must be an http(s) URL, not {url!r}")
    model = (settings.engram_llm_model or "").strip()
    if not model:
        raise ConfigError("engram_llm_model", "needed when ENGRAM_LLM_BASE_URL is set")
    key = settings.engram_llm_api_key
    return LLMConfig(
        base_url=url,
        model=model,
        api_key=key.get_secret_value() if key is not None else None,
        timeout_s=settings.engram_llm_timeout_s,
        concurrency=settings.engram_llm_concurrency,
    )


@dataclass
class ExtractReport:
    """Who read the user texts of one `extract_reported` call, and why the model did not."""

    by_model: int = 0
    by_rules: int = 0  # the model failed on them or was cooling down
    failures: Counter[str] = field(default_factory=Counter)  # reason -> texts


class _Breaker:
    """Closed: texts go to the model. Open after a failure: they go to the rules until the
    cool-down ends; then one request probes the model, and its answer closes the breaker."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._probing = False

    def admit(self) -> bool:
        """True when this request may go to the model."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._probing or self._clock() < self._open_until:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        """The model answered: closed."""
        with self._lock:
            self._open_until = None
            self._probing = False

    def failure(self, at_least_s: float = 0.0) -> None:
        """The endpoint failed: open for the cool-down, or `at_least_s` when longer."""
        with self._lock:
            until = self._clock() + max(self._cooldown_s, at_least_s)
            self._open_until = max(self._open_until or 0.0, until)
            self._probing = False


class _EndpointFailure(ServiceUnavailableError):
    """The endpoint failed; `hold_s` is how long it asked to be left alone (Retry-After)."""

    def __init__(self, reason: str, hold_s: float = 0.0) -> None:
        super().__init__("llm", reason)
        self.hold_s = hold_s


_T = TypeVar("_T")


class LLMExtractor:
    """Facts by a chat model, episodes and times by Engram; the rules read what the model
    cannot (memory.extract.RuleExtractor, or `fallback`)."""

    def __init__(self, config: LLMConfig, fallback: RuleExtractor | None = None) -> None:
        if not config.base_url or not config.model:
            raise ConfigError("engram_llm_base_url", "a base URL and a model are both required")
        self._config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._fallback = fallback or RuleExtractor()
        self._breaker = _Breaker(config.cooldown_s)

    @property
    def model(self) -> str:
        """The model name sent with each request."""
        return self._config.model

    def extract(self, signals: Sequence[TextSignal]) -> list[Memory]:
        """Episodes and facts of the user's own messages and reviews, in signal order."""
        return self.extract_reported(signals)[0]

    def extract_reported(self, signals: Sequence[TextSignal]) -> tuple[list[Memory], ExtractReport]:
        """`extract`, and who read each user text (a warning is logged when the rules did)."""
        turns = [(s, episode) for s in signals if (episode := episode_memory(s)) is not None]
        outcomes = self._map(self._read, [signal for signal, _ in turns])
        memories: list[Memory] = []
        report = ExtractReport()
        for (_, episode), (facts, failure) in zip(turns, outcomes, strict=True):
            memories.append(episode)
            memories.extend(facts)
            if failure is None:
                report.by_model += 1
            else:
                report.by_rules += 1
                report.failures[failure] += 1
        if report.by_rules:
            reasons = "; ".join(f"{reason} ({n})" for reason, n in report.failures.most_common(3))
            log.warning(
                "the rules read %d of %d user texts instead of model %s: %s",
                report.by_rules,
                len(turns),
                self._config.model,
                reasons,
            )
        return memories, report

    def facts(self, signal: TextSignal) -> list[Memory]:
        """The facts the model finds in one user-written signal; raises when it cannot answer
        (ServiceUnavailableError, ConfigError) or answers unusably (ModelReplyError)."""
        reply = _reply_json(self._post(self._request_body(signal)))
        memories: list[Memory] = []
        seen: set[tuple[str, str]] = set()
        for entry in reply["facts"]:
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

    def _read(self, signal: TextSignal) -> tuple[list[Memory], str | None]:
        """The signal's facts by the model, or by the rules with the reason the model's are not."""
        if not self._breaker.admit():
            return self._fallback.facts(signal), "cooling down after an endpoint failure"
        try:
            found = self.facts(signal)
        except ModelReplyError as error:
            self._breaker.success()  # the endpoint answers; this text is the problem
            return self._fallback.facts(signal), error.reason
        except _EndpointFailure as error:
            self._breaker.failure(error.hold_s)
            return self._fallback.facts(signal), error.reason
        except (ServiceUnavailableError, ConfigError) as error:
            self._breaker.failure()
            return self._fallback.facts(signal), str(error)
        self._breaker.success()
        return found, None

    def _map(self, read: Callable[[TextSignal], _T], signals: Sequence[TextSignal]) -> list[_T]:
        workers = min(self._config.concurrency, len(signals))
        if workers <= 1:
            return [read(signal) for signal in signals]
        with ThreadPoolExecutor(workers, thread_name_prefix="llm-extract") as pool:
            return list(pool.map(read, signals))

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

    def _post(self, body: bytes) -> bytes:
        """The response body of one chat completion, with bounded retries of transient
        failures (backoff doubling from `backoff_s`, or the server's Retry-After)."""
        request = urllib.request.Request(self._url, data=body, headers=self._headers)
        attempts = self._config.max_retries + 1
        last_error = ""
        for attempt in range(attempts):
            wait: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self._config.timeout_s) as response:
                    return bytes(response.read())
            except urllib.error.HTTPError as error:
                last_error, wait = self._http_failure(error)
            except TimeoutError as error:  # while waiting for the answer
                raise self._timed_out() from error
            except urllib.error.URLError as error:
                if isinstance(error.reason, TimeoutError):  # while connecting
                    raise self._timed_out() from error
                last_error = f"unreachable ({error.reason})"
            except (ConnectionError, http.client.HTTPException) as error:
                last_error = f"connection failed ({type(error).__name__})"
            if attempt + 1 < attempts:
                time.sleep(max(wait or 0.0, self._config.backoff_s * 2**attempt))
        raise _EndpointFailure(f"{last_error} after {attempts} attempt{'s' * (attempts > 1)}")

    def _http_failure(self, error: urllib.error.HTTPError) -> tuple[str, float | None]:
        """For a status worth retrying, its description and the server's Retry-After; raises
        for the others."""
        status = error.code
        if status in (401, 403):
            raise ConfigError("engram_llm_api_key", f"HTTP {status} from {self._url}") from error
        if status in _REFUSED_STATUS:
            raise ModelReplyError("llm", f"request refused, HTTP {status}") from error
        if status not in _TRANSIENT_STATUS:
            raise _EndpointFailure(f"HTTP {status} from {self._url}") from error
        wait = retry_after_s(error.headers)
        if wait is not None and wait > self._config.max_wait_s:
            raise _EndpointFailure(f"HTTP {status}, retry after {wait:g} s", wait) from error
        return f"HTTP {status}", wait

    def _timed_out(self) -> _EndpointFailure:
        return _EndpointFailure(f"no answer within {self._config.timeout_s:g} s")


def retry_after_s(headers: Mapping[str, str] | email.message.Message | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reply_json(payload: bytes) -> dict[str, Any]:
    """The {"facts": [...]} object the model wrote, from a chat-completions response body."""
    try:
        content = json.loads(payload)["choices"][0]["message"]["content"]
        text = content.strip()
        if text.startswith("```"):
            # Models often fence JSON even when asked not to.
            text = text.strip("`").removeprefix("json").strip()
        reply = json.loads(text)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise ModelReplyError("llm", f"not the JSON asked for ({type(error).__name__})") from error
    if not isinstance(reply, dict) or not isinstance(reply.get("facts"), list):
        raise ModelReplyError("llm", 'not the schema asked for (no "facts" list)')
    return reply


def _parse_fact(entry: object) -> tuple[Fact, float, str | None, str] | None:
    """A fact entry as (fact, confidence, time phrase, tense), or None if it breaks the schema."""
    if not isinstance(entry, dict):
        return None
    kind, text = entry.get("kind"), entry.get("text")
    if kind not in FACT_KINDS or not isinstance(text, str):
        return None
    if not 0 < len(text.strip()) <= _MAX_TEXT_CHARS:
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
