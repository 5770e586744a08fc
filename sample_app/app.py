"""Build the web app: database, metrics, routes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .db import database_url_from_env, init_database, make_engine
from .metrics import AppMetrics, MetricsMiddleware
from .routes import feed, ops, pages, posts, users
from .version import read_version

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Prepare the database before serving; release connections after the last request."""
    init_database(app.state.engine)
    app.state.ready = True
    logger.info("serving version %s", app.state.version)
    try:
        yield
    finally:
        app.state.ready = False
        app.state.engine.dispose()
        app.state.health_engine.dispose()


def create_app(database_url: str | None = None, *, version: str | None = None) -> FastAPI:
    """Return the app for database_url (default: SAMPLE_APP_DATABASE_URL) and version (default: REVISION)."""
    url = database_url or database_url_from_env()
    app_version = version or read_version()
    app = FastAPI(title="Snapgram", version=app_version, lifespan=lifespan)
    app.state.version = app_version
    app.state.started_at = time.time()
    app.state.ready = False
    app.state.engine = make_engine(url)
    app.state.health_engine = make_engine(url, pooled=False)
    app.state.metrics = AppMetrics(app_version)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    for module in (ops, users, posts, feed, pages):
        app.include_router(module.router)
    return app
