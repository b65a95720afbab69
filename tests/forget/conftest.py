"""Fixtures of the forget tests: the serving tests' app factory and stoppable Redis."""

from tests.serving.conftest import make_app, stoppable_redis  # noqa: F401  (fixtures, shared)
