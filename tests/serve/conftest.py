"""Serve tests reuse the HTTP API's tiny models (tests/services/conftest.py)."""

from tests.services.conftest import api_models  # noqa: F401 - a fixture

