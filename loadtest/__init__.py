"""Load tests of the HTTP API: locust scenarios, SLO checks and a soak mode (docs/loadtest.md)."""
