"""Photo posts, their images, likes and comments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from ..deps import SessionDep
from ..metrics import cpu_timed
from ..models import (
    USERNAME_PATTERN,
    Comment,
    CommentCreate,
    CommentPublic,
    Like,
    LikePublic,
    LikeRequest,
    Post,
    PostImage,
    PostPublic,
    User,
)
from ..queries import comment_public, get_post_or_404, get_user_or_404, like_count, posts_public

router = APIRouter(prefix="/api/posts", tags=["posts"])

MAX_IMAGE_BYTES = 256 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_COMMENTS = 200


@router.post("", status_code=201)
@cpu_timed
def create_post(
    session: SessionDep,
    author: Annotated[str, Form(pattern=USERNAME_PATTERN)],
    image: Annotated[UploadFile, File()],
    caption: Annotated[str, Form(max_length=2200)] = "",
) -> PostPublic:
    """Publish a photo with a caption; 413 if the image is over 256 KiB."""
    user = get_user_or_404(session, author)
    content_type = (image.content_type or "").split(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        raise HTTPException(status_code=422, detail=f"image must be one of {sorted(IMAGE_TYPES)}, not {content_type!r}")
    # Read one byte past the limit: enough to know it is too big without loading it all.
    data = image.file.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise HTTPException(status_code=413, detail=f"image is larger than {MAX_IMAGE_BYTES} bytes")
    if not data:
        raise HTTPException(status_code=422, detail="image is empty")
    post = Post(author_id=user.id, caption=caption, content_type=content_type, image_size=len(data))
    session.add(post)
    session.flush()
    session.add(PostImage(post_id=post.id, data=data))
    session.commit()
    session.refresh(post)
    return posts_public(session, [post])[0]


@router.get("/{post_id}")
@cpu_timed
def get_post(post_id: int, session: SessionDep) -> PostPublic:
    """Return one post with its like and comment counts."""
    post = get_post_or_404(session, post_id)
    return posts_public(session, [post])[0]


@router.get("/{post_id}/image")
@cpu_timed
def get_post_image(post_id: int, session: SessionDep) -> Response:
    """Return the image bytes of a post with their content type."""
    post = get_post_or_404(session, post_id)
    image = session.get(PostImage, post_id)
    if image is None:
        raise HTTPException(status_code=404, detail=f"post {post_id} has no image")
    # Images never change once posted, so clients may keep them.
    headers = {"Cache-Control": "public, max-age=86400, immutable"}
    return Response(content=image.data, media_type=post.content_type, headers=headers)


@router.post("/{post_id}/like")
@cpu_timed
def like_post(post_id: int, body: LikeRequest, session: SessionDep) -> LikePublic:
    """Like a post; liking twice is harmless."""
    post = get_post_or_404(session, post_id)
    user = get_user_or_404(session, body.user)
    if session.get(Like, {"user_id": user.id, "post_id": post.id}) is None:
        session.add(Like(user_id=user.id, post_id=post_id))
        try:
            session.commit()
        except IntegrityError:
            # A double tap raced with itself; the other request recorded the like.
            session.rollback()
    return LikePublic(post_id=post_id, user=user.username, liked=True, likes=like_count(session, post_id))


@router.delete("/{post_id}/like")
@cpu_timed
def unlike_post(post_id: int, body: LikeRequest, session: SessionDep) -> LikePublic:
    """Take back a like; unliking twice is harmless."""
    post = get_post_or_404(session, post_id)
    user = get_user_or_404(session, body.user)
    like = session.get(Like, {"user_id": user.id, "post_id": post.id})
    if like is not None:
        session.delete(like)
        session.commit()
    return LikePublic(post_id=post_id, user=user.username, liked=False, likes=like_count(session, post_id))


@router.post("/{post_id}/comments", status_code=201)
@cpu_timed
def add_comment(post_id: int, body: CommentCreate, session: SessionDep) -> CommentPublic:
    """Comment on a post."""
    post = get_post_or_404(session, post_id)
    user = get_user_or_404(session, body.user)
    comment = Comment(post_id=post.id, user_id=user.id, text=body.text)
    session.add(comment)
    session.commit()
    session.refresh(comment)
    return comment_public(comment, user.username)


@router.get("/{post_id}/comments")
@cpu_timed
def list_comments(post_id: int, session: SessionDep) -> list[CommentPublic]:
    """Return a post's comments, oldest first."""
    post = get_post_or_404(session, post_id)
    rows = session.exec(
        select(Comment, User.username)
        .join(User, col(User.id) == col(Comment.user_id))
        .where(Comment.post_id == post.id)
        .order_by(col(Comment.id))
        .limit(MAX_COMMENTS)
    ).all()
    return [comment_public(comment, username) for comment, username in rows]
