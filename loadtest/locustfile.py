"""Mixed API traffic for locust: rank, memory search, features and signal ingest.

Run by `engram loadtest` (loadtest/runner.py) as `python -m locust -f loadtest/locustfile.py`,
never imported by the project: locust patches the standard library with gevent. Every id, the
API key, the traffic weights and the target rate come from the pool file named by
ENGRAM_LOADTEST_POOL (written by the runner from ENGRAM_HOME's data, see loadtest/pool.py). It is
read when locust imports this file because the task weights must be known when the class is built.
Requests are reported under the names of loadtest/config.py's SCENARIOS.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from locust import FastHttpUser, constant_throughput

with open(os.environ["ENGRAM_LOADTEST_POOL"], encoding="utf-8") as _pool_file:
    POOL: dict[str, Any] = json.load(_pool_file)
WEIGHTS: dict[str, int] = POOL["weights"]
SHAPES: dict[str, int] = POOL["requests"]
_instances = itertools.count()
_IN_STEP = constant_throughput(POOL["rate_per_user"] or 1.0)


def _expect(response: Any, status: int) -> None:
    """Count anything but the expected status as a failure, with the server's detail."""
    if response.status_code != status:
        response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
    else:
        response.success()


class ApiUser(FastHttpUser):
    """One client sending the configured mix at `rate_per_user` requests/s.

    Arrivals ("arrivals" in the pool): "poisson" starts each request at the next point of a
    Poisson process of the user's rate, from a random phase, so the users together send what
    many independent clients would: a Poisson stream at the total rate. "constant" is locust's
    constant_throughput: every user fires once per period, and users started together stay in
    step, so the server gets bursts of up to `users` requests at once and none in between.
    """

    next_start: float = 0.0  # monotonic time of this user's next request (poisson)

    def wait_time(self) -> float:
        rate = POOL["rate_per_user"]
        if rate <= 0:
            return 0.0
        if POOL.get("arrivals", "poisson") == "constant":
            return float(_IN_STEP(self))
        # The schedule runs on its own clock: a slow response delays only its own gap.
        self.next_start = max(self.next_start, time.monotonic() - 1.0) + self.rng.expovariate(rate)
        return max(0.0, self.next_start - time.monotonic())

    def on_start(self) -> None:
        self.rng = random.Random(POOL["seed"] * 1_000_003 + next(_instances))
        rate = POOL["rate_per_user"]
        self.next_start = time.monotonic() + (self.rng.uniform(0, 1 / rate) if rate > 0 else 0)
        self.headers = {"Content-Type": "application/json"}
        if POOL.get("api_key"):
            self.headers["Authorization"] = f"Bearer {POOL['api_key']}"

    def _user(self) -> str:
        return str(self.rng.choice(POOL["users"]))

    def rank(self) -> None:
        """POST /v1/rank for a known user, the server's candidates or catalog items."""
        body: dict[str, Any] = {"user_id": self._user(), "k": SHAPES.get("rank_k", 10)}
        n_candidates = SHAPES.get("rank_candidates", 0)
        if n_candidates and POOL["items"]:
            body["candidates"] = self.rng.sample(
                POOL["items"], min(n_candidates, len(POOL["items"]))
            )
        with self.client.post(
            "/v1/rank", json=body, headers=self.headers, name="/v1/rank", catch_response=True
        ) as response:
            _expect(response, 200)

    def memory_search(self) -> None:
        """POST /v1/users/{id}/memories/search with a query about a user who wrote something."""
        user = self.rng.choice(POOL["memory_users"] or POOL["users"])
        body = {"query": self.rng.choice(POOL["queries"]), "k": SHAPES.get("search_k", 5)}
        with self.client.post(
            f"/v1/users/{user}/memories/search",
            json=body,
            headers=self.headers,
            name="/v1/users/[id]/memories/search",
            catch_response=True,
        ) as response:
            _expect(response, 200)

    def features(self) -> None:
        """GET /v1/users/{id}/features."""
        with self.client.get(
            f"/v1/users/{self._user()}/features",
            headers=self.headers,
            name="/v1/users/[id]/features",
            catch_response=True,
        ) as response:
            _expect(response, 200)

    def signals(self) -> None:
        """POST /v1/signals: a small batch of views and clicks on catalog items, fresh ids."""
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        user = self._user()
        batch = [
            {
                "event_id": f"lt-{uuid.UUID(int=self.rng.getrandbits(128)).hex}",
                "user_id": user,
                "ts": now,
                "type": self.rng.choice(("view", "view", "click", "add_to_cart")),
                "item_id": self.rng.choice(POOL["items"]) if POOL["items"] else "item-0",
                "context": {"source": "loadtest"},
            }
            for _ in range(max(SHAPES.get("signals_per_batch", 5), 1))
        ]
        with self.client.post(
            "/v1/signals",
            json=batch,
            headers=self.headers,
            name="/v1/signals",
            catch_response=True,
        ) as response:
            _expect(response, 202)

    tasks = {  # type: ignore[assignment]  # noqa: RUF012  # locust takes {task: weight} too
        function: WEIGHTS[name]
        for name, function in (
            ("rank", rank),
            ("memory_search", memory_search),
            ("features", features),
            ("signals", signals),
        )
        if WEIGHTS.get(name, 0) > 0
    }
