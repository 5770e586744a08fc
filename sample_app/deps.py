"""Request-scoped dependencies shared by the route modules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from .gates import RequestFlags, flags_of


def get_session(request: Request) -> Iterator[Session]:
    """Yield a database session bound to the app's engine, closed after the request."""
    with Session(request.app.state.engine) as session:
        yield session


async def get_flags(request: Request) -> RequestFlags:
    """Return the feature flags as this request sees them (evaluated once, memory only)."""
    # async: memory only, so it runs on the event loop instead of costing a worker-thread hop.
    return flags_of(request.scope, getattr(request.app.state, "flags", None))


SessionDep = Annotated[Session, Depends(get_session)]
FlagsDep = Annotated[RequestFlags, Depends(get_flags)]
