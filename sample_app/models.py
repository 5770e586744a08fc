"""Database tables and the JSON shapes of the API."""

from __future__ import annotations

import time

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

USERNAME_PATTERN = r"^[a-z0-9_]{1,30}$"


def now() -> float:
    """Return the current time as a unix timestamp (the API's time format)."""
    return time.time()


# --- tables -----------------------------------------------------------------


class User(SQLModel, table=True):
    """A person who posts, follows, likes and comments."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=30)
    created_at: float = Field(default_factory=now)


class Follow(SQLModel, table=True):
    """follower follows followee; the composite key makes following idempotent."""

    follower_id: int = Field(foreign_key="user.id", primary_key=True)
    followee_id: int = Field(foreign_key="user.id", primary_key=True, index=True)
    created_at: float = Field(default_factory=now)


class Post(SQLModel, table=True):
    """A photo post; the image bytes live in PostImage so feed queries stay light."""

    id: int | None = Field(default=None, primary_key=True)
    author_id: int = Field(foreign_key="user.id", index=True)
    caption: str = Field(default="", max_length=2200)
    content_type: str = Field(max_length=64)
    image_size: int = 0
    created_at: float = Field(default_factory=now)


class PostImage(SQLModel, table=True):
    """The image of one post."""

    post_id: int = Field(foreign_key="post.id", primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Like(SQLModel, table=True):
    """user likes post; the composite key makes liking idempotent."""

    user_id: int = Field(foreign_key="user.id", primary_key=True)
    post_id: int = Field(foreign_key="post.id", primary_key=True, index=True)
    created_at: float = Field(default_factory=now)


class Comment(SQLModel, table=True):
    """A comment on a post."""

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    text: str = Field(max_length=500)
    created_at: float = Field(default_factory=now)


# --- request bodies -----------------------------------------------------------


class UserCreate(BaseModel):
    """Body of POST /api/users."""

    username: str = PydanticField(pattern=USERNAME_PATTERN)


class FollowRequest(BaseModel):
    """Body of POST/DELETE /api/users/{username}/follow."""

    follower: str = PydanticField(pattern=USERNAME_PATTERN)


class LikeRequest(BaseModel):
    """Body of POST/DELETE /api/posts/{post_id}/like."""

    user: str = PydanticField(pattern=USERNAME_PATTERN)


class CommentCreate(BaseModel):
    """Body of POST /api/posts/{post_id}/comments."""

    user: str = PydanticField(pattern=USERNAME_PATTERN)
    text: str = PydanticField(min_length=1, max_length=500)


# --- responses ----------------------------------------------------------------


class UserPublic(BaseModel):
    """A user with follower/following/post counts."""

    username: str
    created_at: float
    followers: int
    following: int
    posts: int


class FollowPublic(BaseModel):
    """The follow relation after a follow/unfollow."""

    follower: str
    followee: str
    following: bool


class PostPublic(BaseModel):
    """A post with its like and comment counts."""

    id: int
    author: str
    caption: str
    image_url: str
    content_type: str
    image_size: int
    created_at: float
    likes: int
    comments: int


class LikePublic(BaseModel):
    """A post's like state for one user after a like/unlike."""

    post_id: int
    user: str
    liked: bool
    likes: int


class CommentPublic(BaseModel):
    """A comment on a post."""

    id: int
    post_id: int
    user: str
    text: str
    created_at: float


class FeedPublic(BaseModel):
    """The newest posts by a user and by the people they follow."""

    user: str
    posts: list[PostPublic]
    # Behind the feed-suggestions flag: absent from the answer (not null) when the flag is off.
    suggestions: list[str] | None = None
