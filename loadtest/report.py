"""A run's summary.json as Markdown, ready for docs/benchmarks.md (pure: dict in, text out)."""

from __future__ import annotations

from typing import Any

from loadtest.config import SCENARIOS
from loadtest.slo import AGGREGATED

_ORDER = (*SCENARIOS, AGGREGATED)


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:g}"  # NaN: no request


def endpoint_table(summary: dict[str, Any]) -> str:
    """Per endpoint: requests, failures, p50/p95/p99/max ms and requests/s sustained."""
    lines = [
        "| endpoint | requests | failures | p50 ms | p95 ms | p99 ms | max ms | requests/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    endpoints = summary["endpoints"]
    for key in sorted(endpoints, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER)):
        row = endpoints[key]
        label = "all (mixed)" if key == AGGREGATED else f"{row['method']} {row['name']}"
        lines.append(
            f"| {label} | {row['requests']:,} | {row['failures']} | {_ms(row['p50_ms'])} | "
            f"{_ms(row['p95_ms'])} | {_ms(row['p99_ms'])} | {_ms(row['max_ms'])} | "
            f"{row['rps']:.1f} |"
        )
    return "\n".join(lines)


def memory_table(summary: dict[str, Any]) -> str:
    """Soak memory: first vs last window means and growth, per series."""
    lines = [
        "| series | first window MB | last window MB | growth | limit |",
        "| --- | --- | --- | --- | --- |",
    ]
    for g in summary.get("memory", []):
        lines.append(
            f"| {g['series']} | {g['first_mean_bytes'] / 1e6:.1f} | "
            f"{g['last_mean_bytes'] / 1e6:.1f} | {g['growth_pct']:+.2f}% | {g['limit_pct']:g}% |"
        )
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    """The endpoint table, the memory table when soaking, and the run's conditions."""
    machine = summary["machine"]
    parts = [
        f"{summary['duration_s']} s, {summary['users']} locust users, target "
        f"{summary['target_rps'] or 'max'} requests/s ({summary.get('arrivals')} arrivals), "
        f"{summary['workers']} server workers x "
        f"{summary.get('threads')} threads; "
        f"machine {machine['host']} ({machine['cpus']} cores), load average "
        f"{machine.get('load_average_before', ['?'])[0]} before, "
        f"{machine['load_average'][0]} after; server CPU "
        f"{summary.get('server_cpu_ms_per_request') or '?'} ms per request.",
        "",
        endpoint_table(summary),
    ]
    if summary.get("memory"):
        parts += ["", memory_table(summary)]
    verdict = summary.get("breaches") or ["all SLOs held"]
    parts += ["", "SLO check: " + "; ".join(verdict) + "."]
    return "\n".join(parts)
