"""Lookups and read models shared by the route handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func
from sqlmodel import Session, col, select

from .models import Comment, CommentPublic, Follow, Like, Post, PostPublic, User, UserPublic

# Ids are INTEGER columns: 32-bit on PostgreSQL (SQLite's are 64-bit), so the narrower range.
MIN_ID, MAX_ID = -(2**31), 2**31 - 1


def get_user_or_404(session: Session, username: str) -> User:
    """Return the user called username, or raise 404."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise HTTPException(status_code=404, detail=f"user {username!r} not found")
    return user


def get_post_or_404(session: Session, post_id: int) -> Post:
    """Return the post with id post_id, or raise 404."""
    # An id no column can hold names no post; asking the database would fail (500), not miss.
    if not MIN_ID <= post_id <= MAX_ID:
        raise HTTPException(status_code=404, detail=f"post {post_id} not found")
    post = session.get(Post, post_id)
    if post is None:
        raise HTTPException(status_code=404, detail=f"post {post_id} not found")
    return post


def _count(session: Session, column: Any, condition: Any) -> int:
    """Return how many rows match condition."""
    return int(session.exec(select(func.count(column)).where(condition)).one())


def user_public(session: Session, user: User) -> UserPublic:
    """Return user with its follower, following and post counts."""
    assert user.id is not None
    return UserPublic(
        username=user.username,
        created_at=user.created_at,
        followers=_count(session, Follow.follower_id, Follow.followee_id == user.id),
        following=_count(session, Follow.followee_id, Follow.follower_id == user.id),
        posts=_count(session, Post.id, Post.author_id == user.id),
    )


def like_count(session: Session, post_id: int) -> int:
    """Return the number of likes of a post."""
    return _count(session, Like.user_id, Like.post_id == post_id)


def posts_public(session: Session, posts: Sequence[Post]) -> list[PostPublic]:
    """Return posts with author names and like/comment counts, in three queries in all."""
    ids = [post.id for post in posts if post.id is not None]
    if not ids:
        return []
    author_ids = {post.author_id for post in posts}
    authors = dict(session.exec(select(User.id, User.username).where(col(User.id).in_(author_ids))).all())
    likes = dict(
        session.exec(
            select(Like.post_id, func.count()).where(col(Like.post_id).in_(ids)).group_by(col(Like.post_id))
        ).all()
    )
    comments = dict(
        session.exec(
            select(Comment.post_id, func.count()).where(col(Comment.post_id).in_(ids)).group_by(col(Comment.post_id))
        ).all()
    )
    return [
        PostPublic(
            id=post.id,
            author=authors.get(post.author_id, "?"),
            caption=post.caption,
            image_url=f"/api/posts/{post.id}/image",
            content_type=post.content_type,
            image_size=post.image_size,
            created_at=post.created_at,
            likes=likes.get(post.id, 0),
            comments=comments.get(post.id, 0),
        )
        for post in posts
        if post.id is not None
    ]


def comment_public(comment: Comment, username: str) -> CommentPublic:
    """Return the API shape of a comment written by username."""
    assert comment.id is not None
    return CommentPublic(
        id=comment.id,
        post_id=comment.post_id,
        user=username,
        text=comment.text,
        created_at=comment.created_at,
    )


def suggested_accounts(session: Session, viewer: User, followees: Any, limit: int = 3) -> list[str]:
    """Return up to limit usernames viewer does not follow yet, newest accounts first."""
    rows = session.exec(
        select(User.username)
        .where(col(User.id) != viewer.id, col(User.id).not_in(followees))
        .order_by(col(User.id).desc())
        .limit(limit)
    ).all()
    return list(rows)
