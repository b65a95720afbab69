"""One load run end to end: prepare data, start the server, run locust headless, check, stop.

Writes into the output directory: report.html (locust's report), locust.json (final counts,
checked), locust_stats.csv and the other locust CSVs, pool.json (0600: holds the run's API key),
soak.csv when soaking, server.log, steps.log, locust.log and summary.json (the figures, the
machine, every breach).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInputError, ServiceUnavailableError
from core.settings import Settings
from loadtest import pool as pool_module
from loadtest import slo, soak, stack
from loadtest.config import LoadConfig, load_config

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True)
class LoadOptions:
    """What to run: duration, load shape, server size, soak, where results go."""

    out: Path
    duration_s: int = 60
    users: int = 20
    spawn_rate: float = 20.0
    rate: float | None = 100.0  # total requests/s aimed at; None: as fast as the users can
    workers: int = 2
    threads: int = 1  # per worker; 1: sync workers (see `engram serve --threads`)
    arrivals: str = "poisson"  # request start times: "poisson" or "constant" (locustfile)
    soak: bool = False
    warmup_s: int = 10  # same traffic first, not measured: lazy loads and caches fill here
    config_path: Path | None = None
    preset: str = "demo"
    train: bool = True  # when preparing data, train the ranker if `engram train` exists
    url: str | None = None  # a server already running: start nothing
    api_key: str | None = None  # with `url`
    server_command: tuple[str, ...] | None = None  # instead of `engram serve` (tests)


@dataclass
class LoadResult:
    """The figures of a run and whether it held its objectives."""

    out: Path
    stats: dict[str, slo.EndpointStats]
    breaches: list[slo.Breach]
    growth: list[soak.Growth] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No SLO breached and no memory growth past its limit."""
        return not self.breaches and all(g.ok for g in self.growth)

    @property
    def failures(self) -> list[str]:
        """One line per broken objective."""
        lines = [f"SLO breached: {b.message}" for b in self.breaches]
        return lines + [f"memory growth: {g.message}" for g in self.growth if not g.ok]


def _machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run_locust(
    url: str,
    pool_path: Path,
    options: LoadOptions,
    out: Path,
    env: dict[str, str],
    duration_s: int,
) -> None:
    """Run locust headless for `duration_s`; its JSON, CSVs and HTML report land in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(options.users),
        "--spawn-rate",
        str(options.spawn_rate),
        "--run-time",
        f"{duration_s}s",
        "--stop-timeout",
        "5",
        "--host",
        url,
        "--csv",
        str(out / "locust"),
        "--csv-full-history",
        "--html",
        str(out / "report.html"),
        "--json-file",
        str(out / "locust"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
    ]
    with (out / "locust.log").open("ab") as log:
        done = subprocess.run(
            command,
            env={**env, "ENGRAM_LOADTEST_POOL": str(pool_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=duration_s + 120,
            check=False,
        )
    if done.returncode != 0 or not (out / "locust.json").exists():
        raise ServiceUnavailableError(
            "locust", f"exited {done.returncode}; see {out / 'locust.log'}"
        )


def _build_pool(
    settings: Settings, config: LoadConfig, options: LoadOptions, data_dir: Path, key: str | None
) -> pool_module.Pool:
    users, memory_users, items = pool_module.read_ids(settings)
    return pool_module.Pool(
        users=users,
        memory_users=memory_users,
        items=items,
        queries=pool_module.read_queries(data_dir / "queries.jsonl"),
        api_key=key,
        weights=config.traffic,
        requests=config.requests,
        rate_per_user=(options.rate / options.users) if options.rate else 0.0,
        arrivals=options.arrivals,
    )


def _ensure_online(
    server: stack.Server,
    pool: pool_module.Pool,
    env: dict[str, str],
    log: Path,
    say: Callable[[str], None],
) -> None:
    """Materialize when the first pool user has no online features (e.g. a flushed Redis)."""
    headers = {"Authorization": f"Bearer {pool.api_key}"} if pool.api_key else {}
    probe = f"{server.url}/v1/users/{pool.users[0]}/features"
    if stack.http_status(probe, headers) == 404:
        say("data: online store empty, materializing")
        stack.materialize(env, log)


def run_load(
    settings: Settings, options: LoadOptions, say: Callable[[str], None] = print
) -> LoadResult:
    """Prepare, serve, load, check; stops everything it started, whatever happens."""
    if options.duration_s <= 0 or options.users <= 0:
        raise InvalidInputError("duration", "duration and users must be > 0")
    config = load_config(options.config_path)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ENGRAM_HOME": str(settings.engram_home)}
    for name, value in (("REDIS_URL", settings.redis_url), ("MILVUS_URI", settings.milvus_uri)):
        if value:
            env[name] = value
    load_before = os.getloadavg()

    if options.url:
        data_dir = settings.engram_home / stack.DATA_DIR_NAME
        pool = _build_pool(settings, config, options, data_dir, options.api_key)
        result = _load_and_check(settings, options, config, pool, options.url, None, env, say)
    else:
        with stack.stopping_local_services(settings, say):
            result = _serve_and_load(settings, options, config, env, say)
    result.summary["machine"]["load_average_before"] = [round(x, 2) for x in load_before]
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2), encoding="utf-8")
    return result


def _serve_and_load(
    settings: Settings,
    options: LoadOptions,
    config: LoadConfig,
    env: dict[str, str],
    say: Callable[[str], None],
) -> LoadResult:
    out = options.out
    steps_log = out / "steps.log"
    data_dir = stack.prepare_data(settings, env, options.preset, steps_log, say, options.train)
    key = secrets.token_urlsafe(24)
    pool = _build_pool(settings, config, options, data_dir, key)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = options.server_command or tuple(
        stack.engram_command(
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(options.workers),
            "--threads",
            str(options.threads),
        )
    )
    server_env = {**env, "ENGRAM_API_KEYS": f"{key}:read,write", "PORT": str(port)}
    say(f"server: {options.workers} workers x {options.threads} threads on {url}")
    with stack.running_server(command, url, server_env, out / "server.log") as server:
        _ensure_online(server, pool, env, steps_log, say)
        return _load_and_check(settings, options, config, pool, url, server.pid, env, say)


def _free_port() -> int:
    from core.stores.local_redis import free_port

    return free_port()


def _redis_url(settings: Settings) -> str | None:
    from core.stores.services import local_services_status

    return local_services_status(settings)["redis"]


def _warm_up(
    url: str,
    pool_path: Path,
    options: LoadOptions,
    env: dict[str, str],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The same traffic for `warmup_s`, kept apart in OUT/warmup; its totals for the summary."""
    if options.warmup_s <= 0:
        return {}
    say(f"warm-up: {options.warmup_s} s of the same traffic, not measured")
    run_locust(url, pool_path, options, options.out / "warmup", env, options.warmup_s)
    total = slo.read_stats(options.out / "warmup" / "locust.json").get(slo.AGGREGATED)
    if total is None:
        return {}
    return {
        "requests": total.requests,
        "failures": total.failures,
        "p99_ms": total.p99_ms,
        "max_ms": total.max_ms,
    }


def _load_and_check(
    settings: Settings,
    options: LoadOptions,
    config: LoadConfig,
    pool: pool_module.Pool,
    url: str,
    server_pid: int | None,
    env: dict[str, str],
    say: Callable[[str], None],
) -> LoadResult:
    out = options.out
    pool_path = pool_module.write_pool(pool, out / "pool.json")
    sampler = None
    if options.soak and server_pid is not None:
        sampler = soak.Sampler(
            server_pid,
            _redis_url(settings),
            config.soak.sample_every_s,
            config.soak.redis_exclude_keys,
        ).start()
    began = time.monotonic()
    cpu_s = 0.0
    try:
        warmup = _warm_up(url, pool_path, options, env, say)
        say(
            f"locust: {options.users} users, {options.rate or 'max'} requests/s, "
            f"{options.duration_s} s" + (" (soak)" if options.soak else "")
        )
        began = time.monotonic()
        cpu_before = soak.tree_cpu_seconds(server_pid) if server_pid else 0.0
        run_locust(url, pool_path, options, out, env, options.duration_s)
        cpu_s = soak.tree_cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    finally:
        samples = sampler.stop() if sampler is not None else []
    stats = slo.read_stats(out / "locust.json")
    total = stats.get(slo.AGGREGATED)
    breaches = slo.check(stats, config, options.rate)
    growth: list[soak.Growth] = []
    if samples:
        soak.write_samples(samples, out / "soak.csv")
        growth = soak.growth(samples, config.soak)
        if not growth:
            say("soak: too short for two windows after the warm-up; growth not checked")
    summary = {
        "url": url,
        "duration_s": options.duration_s,
        "wall_s": round(time.monotonic() - began, 1),
        "warmup_s": options.warmup_s,
        "warmup": warmup,
        "users": options.users,
        "target_rps": options.rate,
        "workers": options.workers if server_pid is not None else None,
        "threads": options.threads if server_pid is not None else None,
        "arrivals": options.arrivals,
        # CPU the server used during the measured run: what a request costs, whatever the load.
        "server_cpu_s": round(cpu_s, 2),
        "server_cpu_ms_per_request": round(1000 * cpu_s / total.requests, 2)
        if cpu_s and total is not None and total.requests
        else None,
        "soak": options.soak,
        "pool": {
            "users": len(pool.users),
            "memory_users": len(pool.memory_users),
            "items": len(pool.items),
            "queries": len(pool.queries),
        },
        "traffic": config.traffic,
        "machine": _machine(),
        "endpoints": {key: asdict(row) for key, row in stats.items()},
        "breaches": [b.message for b in breaches],
        "memory": [
            {
                "series": g.series,
                "first_mean_bytes": round(g.first_mean),
                "last_mean_bytes": round(g.last_mean),
                "growth_pct": round(g.pct, 2),
                "limit_pct": g.limit_pct,
                "ok": g.ok,
            }
            for g in growth
        ],
        "memory_samples": len(samples),
        "memory_peaks": {
            "server_rss_bytes": max((s.rss_bytes for s in samples), default=None),
            "server_processes": max((s.processes for s in samples), default=None),
            "redis_bytes": max((s.redis_bytes for s in samples), default=None),
            "redis_excluded_bytes_last": samples[-1].excluded_bytes if samples else None,
        },
    }
    return LoadResult(out=out, stats=stats, breaches=breaches, growth=growth, summary=summary)
