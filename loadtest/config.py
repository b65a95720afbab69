"""The load-test configuration (loadtest/slo.yaml): traffic mix, request shapes, SLOs, soak limits.

One typed object read once from YAML and passed down, so the runner, the locustfile (through the
pool file) and the SLO checker agree on names and numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.errors import InvalidInputError

DEFAULT_CONFIG = Path(__file__).with_name("slo.yaml")

# Scenario name -> (HTTP method, the name locust reports the request under).
SCENARIOS: dict[str, tuple[str, str]] = {
    "rank": ("POST", "/v1/rank"),
    "memory_search": ("POST", "/v1/users/[id]/memories/search"),
    "features": ("GET", "/v1/users/[id]/features"),
    "signals": ("POST", "/v1/signals"),
}


@dataclass(frozen=True)
class EndpointSlo:
    """Latency objectives of one scenario, in milliseconds."""

    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class SoakLimits:
    """How memory is sampled in a soak and how much growth is tolerated."""

    sample_every_s: float = 5.0
    warmup_s: float = 120.0
    window_s: float = 120.0
    max_rss_growth_pct: float = 10.0
    max_redis_growth_pct: float = 10.0
    redis_exclude_keys: tuple[str, ...] = ("engram:{signals}",)


@dataclass(frozen=True)
class LoadConfig:
    """Everything a load run is told and checked against."""

    traffic: dict[str, int]
    requests: dict[str, int] = field(default_factory=dict)
    max_error_rate: float = 0.0
    min_rate_fraction: float = 0.9
    endpoints: dict[str, EndpointSlo] = field(default_factory=dict)
    soak: SoakLimits = field(default_factory=SoakLimits)


def _number(section: dict[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInputError(where, f"{key} must be a number >= 0, got {value!r}")
    return float(value)


def parse_config(raw: dict[str, Any], where: str = "slo") -> LoadConfig:
    """A LoadConfig from the parsed YAML; unknown scenarios and bad numbers are errors."""
    traffic = raw.get("traffic") or {}
    unknown = set(traffic) - set(SCENARIOS)
    if unknown:
        raise InvalidInputError(where, f"unknown scenarios in traffic: {sorted(unknown)}")
    weights = {name: int(_number(traffic, name, 0, where)) for name in traffic}
    if not any(weights.values()):
        raise InvalidInputError(where, "traffic needs at least one scenario with a weight > 0")
    slo = raw.get("slo") or {}
    endpoints: dict[str, EndpointSlo] = {}
    for name, limits in (slo.get("endpoints") or {}).items():
        if name not in SCENARIOS:
            raise InvalidInputError(where, f"unknown scenario in slo.endpoints: {name!r}")
        endpoints[name] = EndpointSlo(
            p95_ms=_number(limits, "p95_ms", float("inf"), where),
            p99_ms=_number(limits, "p99_ms", float("inf"), where),
        )
    soak_raw = raw.get("soak") or {}
    defaults = SoakLimits()
    excluded = soak_raw.get("redis_exclude_keys", defaults.redis_exclude_keys)
    if not isinstance(excluded, list | tuple) or not all(isinstance(k, str) for k in excluded):
        raise InvalidInputError(where, "soak.redis_exclude_keys must be a list of key names")
    soak = SoakLimits(
        **{
            key: _number(soak_raw, key, getattr(defaults, key), where)
            for key in vars(defaults)
            if key != "redis_exclude_keys"
        },
        redis_exclude_keys=tuple(excluded),
    )
    if soak.sample_every_s <= 0 or soak.window_s <= 0:
        raise InvalidInputError(where, "soak.sample_every_s and soak.window_s must be > 0")
    shapes = raw.get("requests") or {}
    requests = {key: int(_number(shapes, key, 0, where)) for key in shapes}
    return LoadConfig(
        traffic=weights,
        requests=requests,
        max_error_rate=_number(slo, "max_error_rate", 0.0, where),
        min_rate_fraction=_number(slo, "min_rate_fraction", 0.9, where),
        endpoints=endpoints,
        soak=soak,
    )


def load_config(path: Path | None = None) -> LoadConfig:
    """Read the YAML at `path` (default: loadtest/slo.yaml)."""
    path = path or DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInputError("slo", f"cannot read {path}: {error}") from error
    if not isinstance(raw, dict):
        raise InvalidInputError("slo", f"{path}: expected a mapping at the top")
    return parse_config(raw, where=str(path))


def parse_duration(text: str) -> int:
    """'90', '90s', '10m' or '1h' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        seconds = int(float(number) * factor)
    except ValueError as e:
        raise InvalidInputError("duration", f"expected e.g. 60, 90s or 10m, got {text!r}") from e
    if seconds <= 0:
        raise InvalidInputError("duration", "must be > 0")
    return seconds
