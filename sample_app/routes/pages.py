"""A small HTML page showing the newest posts, for people rather than programs."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from ..deps import SessionDep
from ..metrics import cpu_timed
from ..models import Post, PostPublic
from ..queries import posts_public

router = APIRouter(tags=["pages"])

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Snapgram</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; color: #222; }}
article {{ border: 1px solid #ddd; border-radius: 8px; margin: 1rem 0; padding: .75rem; }}
img {{ width: 100%; image-rendering: pixelated; border-radius: 4px; background: #eee; }}
.meta {{ color: #777; font-size: .85rem; }}
</style></head>
<body><h1>Snapgram</h1><p class="meta">version {version}</p>
{posts}
</body></html>
"""


def _render_post(post: PostPublic) -> str:
    """Return the HTML of one post card."""
    return (
        f"<article><b>{escape(post.author)}</b>"
        f'<img src="{escape(post.image_url)}" alt="{escape(post.caption)}" loading="lazy">'
        f"<p>{escape(post.caption)}</p>"
        f'<p class="meta">{post.likes} likes · {post.comments} comments</p></article>'
    )


@router.get("/", response_class=HTMLResponse)
@cpu_timed
def index(request: Request, session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 30) -> HTMLResponse:
    """Return an HTML page with everyone's newest posts."""
    posts = session.exec(select(Post).order_by(col(Post.id).desc()).limit(limit)).all()
    cards = "\n".join(_render_post(post) for post in posts_public(session, posts)) or "<p>No posts yet.</p>"
    return HTMLResponse(PAGE.format(version=escape(request.app.state.version), posts=cards))
