"""The home feed: newest posts by a user and by the people they follow.

Features are launched dark here: the route asks `flags.is_on(KEY, user)` (flags: FlagsDep,
memory only, the variant the request's metrics are labelled with) and takes the new path only
when the flag is on for that user; with every flag off the answer is exactly the old one.
Turning the flag on for a percentage of users is then a change on the platform, not a deploy.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import or_
from sqlmodel import col, select

from ..deps import FlagsDep, SessionDep
from ..metrics import cpu_timed
from ..models import USERNAME_PATTERN, FeedPublic, Follow, Post
from ..queries import get_user_or_404, posts_public, suggested_accounts

router = APIRouter(prefix="/api", tags=["feed"])
# Accounts to follow at the top of the feed.
SUGGESTIONS = "feed-suggestions"


# exclude_none: a feature that is off leaves no trace in the answer (no "suggestions": null).
@router.get("/feed", response_model_exclude_none=True)
@cpu_timed
def get_feed(
    session: SessionDep,
    flags: FlagsDep,
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
    if flags.is_on(SUGGESTIONS, user):
        return FeedPublic(user=viewer.username, posts=posts_public(session, posts),
                          suggestions=suggested_accounts(session, viewer, followees))
    return FeedPublic(user=viewer.username, posts=posts_public(session, posts))
