"""The real app behind a wrapper that answers 500 to every new comment: one broken step of the user journey.

    python -m uvicorn sample_app.tests.broken_comments:make_app --factory --port 8199
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from sample_app.app import create_app


def make_app() -> ASGIApp:
    """Return the app (database from SAMPLE_APP_DATABASE_URL) with POST .../comments broken."""
    app = create_app()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/comments"):
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": b"comment store unavailable"})
            return
        await app(scope, receive, send)  # everything else, the lifespan included, is the real app

    return broken
