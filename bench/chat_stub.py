"""A local OpenAI-compatible chat-completions server: the LLM extractor's plumbing without a model.

`ChatStub(answer)` serves POST {url}/chat/completions on 127.0.0.1 at a free port, records every
request (path, headers, body), and answers what `answer(body)` returns: a `Reply` with the
assistant's content, or a status, raw body, headers and a delay to play a failing server.

Answerers: `scripted(*replies)` (in order, the last one repeats), `truth_answers(signals, facts)`
(the planted facts of the text asked about: what a perfect model would say) and `rule_answers()`
(what the rule extractor finds in it, in the model's schema). The tests of memory.llm_extract and
the extraction figures of bench/memory.py use it; it measures the path, not a model.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from memory.extract import RuleExtractor, TextSignal
from pipelines.generate import Fact as PlantedFact

COMPLETIONS_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    """One answer: a chat completion holding `content`, or `body` as it is."""

    content: str | None = None
    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (a slow model)


@dataclass(frozen=True)
class Recorded:
    """A request as the stub received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def asked(self) -> dict[str, Any]:
        """The user message the extractor sent: {"text", "type", "event_time"}."""
        return asked_message(self.body)


Answer = Callable[[dict[str, Any]], Reply]


def asked_message(body: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object in the last (user) message of a chat-completions request body."""
    message: dict[str, Any] = json.loads(body["messages"][-1]["content"])
    return message


def facts_reply(facts: Sequence[Mapping[str, Any]]) -> Reply:
    """A well-formed answer: {"facts": [...]}."""
    return Reply(json.dumps({"facts": list(facts)}))


def scripted(*replies: Reply) -> Answer:
    """Answers `replies` in order; the last one repeats."""
    queue = list(replies)
    lock = threading.Lock()

    def answer(_: dict[str, Any]) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def truth_answers(signals: Iterable[TextSignal], facts: Iterable[PlantedFact]) -> Answer:
    """Answers with the planted facts that the asked text states (matched on its text and time),
    with the planted time phrase when the text holds it."""
    by_event = {signal.event_id: signal for signal in signals}
    stated: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for fact in facts:
        for event_id in fact.stated_event_ids:
            signal = by_event.get(event_id)
            if signal is None or signal.type == "search":
                continue
            phrase = fact.time_phrase
            if phrase is not None and phrase.casefold() not in signal.text.casefold():
                phrase = None
            entry = {
                "kind": fact.kind,
                "text": fact.text,
                "slot": fact.slot,
                "value": fact.value,
                "time_phrase": phrase,
                "tense": fact.time_direction or "state",
                "confidence": 0.9,
            }
            stated[(signal.text, signal.ts.isoformat())].append(entry)

    def answer(body: dict[str, Any]) -> Reply:
        asked = asked_message(body)
        return facts_reply(stated.get((asked["text"], asked["event_time"]), []))

    return answer


def rule_answers(rules: RuleExtractor | None = None) -> Answer:
    """Answers with the facts the rules find in the asked text (times as the text's own: the
    rules resolve their phrases themselves and keep none to quote)."""
    extractor = rules or RuleExtractor()

    def answer(body: dict[str, Any]) -> Reply:
        asked = asked_message(body)
        when = datetime.fromisoformat(asked["event_time"])
        signal = TextSignal("stub", "stub", when, asked["type"], asked["text"])
        facts = [
            {
                "kind": memory.kind,
                "text": memory.text,
                "slot": memory.slot,
                "value": memory.value,
                "time_phrase": None,
                "tense": "state",
                "confidence": memory.confidence,
            }
            for memory in extractor.facts(signal)
        ]
        return facts_reply(facts)

    return answer


class ChatStub:
    """The server; `with ChatStub(answer) as stub:` runs it, `stub.url` is its base URL."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True  # a delayed answer must not hold up `stop`
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ChatStub:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != COMPLETIONS_PATH:
                    self._send(Reply(status=404, body=b'{"error": "not found"}'), {})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(Reply(status=400, body=b'{"error": "not JSON"}'), {})
                    return
                stub._record(Recorded(self.path, dict(self.headers.items()), body))
                self._send(stub.answer(body), body)

            def _send(self, reply: Reply, request: Mapping[str, Any]) -> None:
                time.sleep(reply.delay_s)
                payload = reply.body if reply.body is not None else _completion(reply, request)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout being tested)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _completion(reply: Reply, request: Mapping[str, Any]) -> bytes:
    """A chat-completions response body holding the reply's content."""
    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content or ""},
                "finish_reason": "stop",
            }
        ],
    }
    return json.dumps(body).encode()
