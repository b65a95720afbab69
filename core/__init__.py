"""The foundation: settings, errors, the signal contract, and the stores (core/stores). It
imports nothing else of the project; everything else imports it."""

import os

# `import feast` (feast/metrics.py) points prometheus_client at a temporary multiprocess directory
# for the whole process, and through the environment for every process it starts, unless
# prometheus_client was imported first. Engram's metrics are per process (serving.metrics,
# pipelines.stream.metrics): prometheus_client is loaded here, before anything can import feast,
# and a directory inherited from a parent that imported feast is dropped. One an operator sets
# for multiprocess mode is kept.
for _name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
    if os.path.basename(os.environ.get(_name, "")).startswith("feast_metrics_"):
        del os.environ[_name]
import prometheus_client.values  # noqa: E402, F401
