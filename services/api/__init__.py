"""The HTTP API: a FastAPI app over an engine interface (no Ray in this package).

``build_app(engine, settings)`` makes the app; :class:`LocalEngine` runs the pipelines in
this process; :class:`Settings` holds bind address, API keys and limits.
"""

from services.api.app import build_app
from services.api.engine import LocalEngine
from services.api.settings import Settings
from workflows.engine import EngineClient

__all__ = ["EngineClient", "LocalEngine", "Settings", "build_app"]
