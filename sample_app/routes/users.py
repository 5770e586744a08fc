"""Users and follows."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy.exc import IntegrityError

from ..deps import SessionDep
from ..metrics import cpu_timed
from ..models import Follow, FollowPublic, FollowRequest, User, UserCreate, UserPublic
from ..queries import get_user_or_404, user_public

router = APIRouter(prefix="/api/users", tags=["users"])


@router.post("", status_code=201)
@cpu_timed
def create_user(body: UserCreate, session: SessionDep) -> UserPublic:
    """Create a user; 409 if the username is taken."""
    user = User(username=body.username)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(status_code=409, detail=f"username {body.username!r} is taken") from None
    session.refresh(user)
    return user_public(session, user)


@router.get("/{username}")
@cpu_timed
def get_user(username: str, session: SessionDep) -> UserPublic:
    """Return a user's profile with follower and following counts."""
    user = get_user_or_404(session, username)
    return user_public(session, user)


@router.post("/{username}/follow")
@cpu_timed
def follow_user(username: str, body: FollowRequest, session: SessionDep) -> FollowPublic:
    """Make body.follower follow username; following twice is harmless."""
    followee = get_user_or_404(session, username)
    follower = get_user_or_404(session, body.follower)
    if follower.id == followee.id:
        raise HTTPException(status_code=422, detail="a user cannot follow themselves")
    key = {"follower_id": follower.id, "followee_id": followee.id}
    if session.get(Follow, key) is None:
        session.add(Follow(follower_id=follower.id, followee_id=followee.id))
        try:
            session.commit()
        except IntegrityError:
            # The same follow arrived twice at once; the other request created it.
            session.rollback()
    return FollowPublic(follower=follower.username, followee=followee.username, following=True)


@router.delete("/{username}/follow")
@cpu_timed
def unfollow_user(username: str, body: FollowRequest, session: SessionDep) -> FollowPublic:
    """Make body.follower stop following username; unfollowing twice is harmless."""
    followee = get_user_or_404(session, username)
    follower = get_user_or_404(session, body.follower)
    follow = session.get(Follow, {"follower_id": follower.id, "followee_id": followee.id})
    if follow is not None:
        session.delete(follow)
        session.commit()
    return FollowPublic(follower=follower.username, followee=followee.username, following=False)
