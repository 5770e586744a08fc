"""The home feed: newest posts by a user and by the people they follow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import or_
from sqlmodel import col, select

from ..deps import SessionDep
from ..metrics import cpu_timed
from ..models import USERNAME_PATTERN, FeedPublic, Follow, Post
from ..queries import get_user_or_404, posts_public

router = APIRouter(prefix="/api", tags=["feed"])


@router.get("/feed")
@cpu_timed
def get_feed(
    session: SessionDep,
    user: Annotated[str, Query(pattern=USERNAME_PATTERN)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> FeedPublic:
    """Return the newest posts by user and whom they follow, with like and comment counts."""
    viewer = get_user_or_404(session, user)
    followees = select(Follow.followee_id).where(Follow.follower_id == viewer.id)
    posts = session.exec(
        select(Post)
        .where(or_(col(Post.author_id) == viewer.id, col(Post.author_id).in_(followees)))
        # Ids grow in insertion order, so the highest id is the newest post.
        .order_by(col(Post.id).desc())
        .limit(limit)
    ).all()
    return FeedPublic(user=viewer.username, posts=posts_public(session, posts))
