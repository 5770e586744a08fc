"""Build the web app: database, metrics, feature flags, routes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .db import database_url_from_env, init_database, make_engine
from .flags import FlagClient
from .gates import FlagSettings, parse_refresh
from .metrics import AppMetrics, MetricsMiddleware
from .routes import feed, ops, pages, posts, users
from .version import read_version

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Prepare the database and start following the flags before serving; release both after the last request."""
    init_database(app.state.engine)
    # The first fetch of the flags happens in the refresh thread: an unreachable platform
    # never delays start-up, the flags are the cached ones (or off) until it answers.
    app.state.flags.start()
    app.state.ready = True
    logger.info("serving version %s", app.state.version)
    try:
        yield
    finally:
        app.state.ready = False
        # Joining the refresh thread can wait for one fetch in flight: not on the event loop.
        await asyncio.to_thread(app.state.flags.close)
        app.state.engine.dispose()
        app.state.health_engine.dispose()


def create_app(
    database_url: str | None = None,
    *,
    version: str | None = None,
    flags_url: str | None = None,
    flags_token: str | None = None,
    flags_refresh_s: float | None = None,
    flags_cache: str | None = None,
    flag_client: FlagClient | None = None,
) -> FastAPI:
    """Return the app for database_url (default: SAMPLE_APP_DATABASE_URL) and version (default: REVISION).

    Feature flags come from flag_client, else from the platform at flags_url (default:
    SAMPLE_APP_FLAGS_URL; none means every flag is off), with flags_token, flags_refresh_s and
    flags_cache defaulting to SAMPLE_APP_FLAGS_TOKEN, SAMPLE_APP_FLAGS_REFRESH and SAMPLE_APP_FLAGS_CACHE.
    """
    url = database_url or database_url_from_env()
    app_version = version or read_version()
    app = FastAPI(title="Snapgram", version=app_version, lifespan=lifespan)
    app.state.version = app_version
    app.state.started_at = time.time()
    app.state.ready = False
    app.state.engine = make_engine(url)
    app.state.health_engine = make_engine(url, pooled=False)
    app.state.metrics = AppMetrics(app_version)
    app.state.flags = flag_client or _flag_client(flags_url, flags_token, flags_refresh_s, flags_cache)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, flags=app.state.flags)
    for module in (ops, users, posts, feed, pages):
        app.include_router(module.router)
    return app


def _flag_client(url: str | None, token: str | None, refresh_s: float | None, cache: str | None) -> FlagClient:
    """The flag client for explicit settings, each falling back to its environment variable."""
    env = FlagSettings.from_env()
    refresh = env.refresh_s if refresh_s is None else parse_refresh("flags_refresh_s", refresh_s)
    return FlagClient(url or env.url, token=token or env.token, refresh_s=refresh, cache_file=cache or env.cache_file)
