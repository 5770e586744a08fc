"""The demo's scripted stream of merges: mostly good changes, one of each bad kind, and fixes.

Each step is what engineers merge together before the pipeline picks it up; the demo
pushes a step to a branch, waits for its required checks, merges it through the gate,
waits for the pipeline to settle, then goes on. Bad changes are real code changes to the
sample app (text edits of its source), written as the plausible mistakes they imitate.

Where each is meant to be stopped (`expected`):
- "refuse": at the merge gate, by its required checks (the app's tests, or its benchmark
  on a benchmarked route); it never reaches main.
- "stop": by the pipeline (at its test stage or at the canary); these pass the checks,
  as a CPU regression that only production-like data reveals does.
- "ship": good changes, reverts and fixes; they reach the whole fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Expected = Literal["ship", "stop", "refuse"]


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new` in `path` (relative to the repository root); `old` must occur once."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class ScriptedCommit:
    key: str
    title: str
    author: str
    kind: str
    expected: Expected
    edits: tuple[Edit, ...] = ()
    new_files: dict[str, str] = field(default_factory=dict)
    reverts: str | None = None      # key of an earlier commit this one reverts
    fixes: str | None = None        # key of an earlier commit this one fixes ("Fixes <sha>" in its message)


class ScenarioError(Exception):
    """The scenario no longer applies to the sample app's source (an anchor text moved)."""


FEED = "sample_app/routes/feed.py"
POSTS = "sample_app/routes/posts.py"
MAIN = "sample_app/__main__.py"
FEED_DOC = '    """Return the newest posts by user and whom they follow, with like and comment counts."""\n'
FEED_RETURN = "    return FeedPublic(user=viewer.username, posts=posts_public(session, posts))\n"
FEED_VIEWER = "    viewer = get_user_or_404(session, user)\n"
FEED_IMPORT = "from fastapi import APIRouter, Query\n"
FEED_FOLLOWEES = "    followees = select(Follow.followee_id).where(Follow.follower_id == viewer.id)\n"
IMAGE_LOOKUP = "    image = session.get(PostImage, post_id)\n"
# Inserted by the latency regression, removed by its fix.
RESIZE_WAIT = "    time.sleep(0.15)  # resize to the viewer's screen before answering\n"
COMMENTS_DOC = '    """Return a post\'s comments, oldest first."""\n'
COMMENTS_RETURN = "    return [comment_public(comment, username) for comment, username in rows]\n"
POST_ANCHOR = ('    """Return one post with its like and comment counts."""\n'
               '    post = get_post_or_404(session, post_id)\n')

GOOD_IMAGE_CACHE = ScriptedCommit(
    "image-cache", "Let browsers cache post images for a week", "Ana Lima", "good", "ship",
    edits=(Edit(POSTS, '"public, max-age=86400, immutable"', '"public, max-age=604800, immutable"'),))
GOOD_COMMENT_PAGE = ScriptedCommit(
    "comment-page", "Show up to 300 comments per post", "Ben Okafor", "good", "ship",
    edits=(Edit(POSTS, "MAX_COMMENTS = 200\n", "MAX_COMMENTS = 300\n"),))
BAD_TESTS = ScriptedCommit(
    "failing-tests", "Answer likes before the write is confirmed", "Chen Wei", "failing-tests", "refuse",
    edits=(Edit(POSTS, "return LikePublic(post_id=post_id, user=user.username, liked=True,",
                "return LikePublic(post_id=post_id, user=user.username, liked=False,"),))
# The comments route derives its blocked-word list on every request: the benchmark shows
# the route much slower than at main's tip, and the merge is refused.
BAD_BENCH = ScriptedCommit(
    "comment-filter", "Hide comments that use blocked words", "Kim Larsen", "bench-slowdown", "refuse",
    edits=(Edit(POSTS, "from typing import Annotated\n", "import hashlib\nfrom typing import Annotated\n"),
           Edit(POSTS, COMMENTS_DOC, COMMENTS_DOC
                + "    blocked = {hashlib.sha256(f\"word-{i}\".encode()).hexdigest()[:8] for i in range(4000)}\n"),
           Edit(POSTS, COMMENTS_RETURN,
                "    return [comment_public(comment, username) for comment, username in rows\n"
                "            if comment.text.lower() not in blocked]\n")))
GOOD_DOCS = ScriptedCommit(
    "feed-docs", "Document how the feed is assembled", "Dana Cruz", "good", "ship",
    new_files={"docs/feed.md": "# The feed\n\nA user's feed holds their own posts and those of the people "
                               "they follow, newest first, with like and comment counts.\n"})
BAD_CRASH = ScriptedCommit(
    "crash-on-start", "Read the feed ranker's address at start-up", "Eli Novak", "crash-on-start", "stop",
    edits=(Edit(MAIN, "import argparse\n", "import argparse\nimport os\n"),
           Edit(MAIN, "    args = parse_args(argv)\n",
                "    args = parse_args(argv)\n    ranker_url = os.environ[\"FEED_RANKER_URL\"]  # the new ranking "
                "service\n    logging.getLogger(__name__).info(\"feed ranker at %s\", ranker_url)\n")))
REVERT_CRASH = ScriptedCommit("revert-crash", "", "Eli Novak", "revert", "ship", reverts="crash-on-start")
# Recent images move to a new store that does not have them yet: their loads answer 500.
# The app's tests post a handful of images and the benchmark does not load images, so the
# merge checks pass; the canary sees users' image loads fail.
BAD_ERRORS = ScriptedCommit(
    "error-spike", "Serve recent images from the new image store", "Fay Adeyemi", "error-spike", "stop",
    edits=(Edit(POSTS, IMAGE_LOOKUP, "    if post_id > 40:  # recent images live in the new store\n"
                                     "        raise RuntimeError(f\"image store: no object for post {post_id}\")\n"
                + IMAGE_LOOKUP),))
REVERT_ERRORS = ScriptedCommit("revert-error-spike", "", "Fay Adeyemi", "revert", "ship", reverts="error-spike")
# The regressions below are on the image route, which the merge benchmark does not drive:
# only production traffic (the canary) reveals them. A regression the benchmark can see is
# refused before merge (see BAD_BENCH).
BAD_LATENCY = ScriptedCommit(
    "latency", "Resize images to the viewer's screen on the fly", "Gus Moreau", "latency", "stop",
    edits=(Edit(POSTS, "from typing import Annotated\n", "import time\nfrom typing import Annotated\n"),
           Edit(POSTS, IMAGE_LOOKUP, IMAGE_LOOKUP + RESIZE_WAIT)))
FIX_LATENCY = ScriptedCommit(
    "fix-latency", "Resize images once, when they are posted", "Gus Moreau", "fix", "ship",
    fixes="latency",
    edits=(Edit(POSTS, RESIZE_WAIT, ""),
           Edit(POSTS, "import time\nfrom typing import Annotated\n", "from typing import Annotated\n")))
BAD_CPU = ScriptedCommit(
    "cpu", "Fingerprint images when they are viewed", "Hana Sato", "cpu", "stop",
    edits=(Edit(POSTS, "from typing import Annotated\n", "import hashlib\nfrom typing import Annotated\n"),
           Edit(POSTS, IMAGE_LOOKUP, IMAGE_LOOKUP
                + "    fingerprint = image.data if image is not None else b\"\"\n"
                  "    for _ in range(150000):  # stable perceptual fingerprint, recomputed on every view\n"
                  "        fingerprint = hashlib.sha256(fingerprint).digest()\n")))
REVERT_CPU = ScriptedCommit("revert-cpu", "", "Hana Sato", "revert", "ship", reverts="cpu")
# A third of the feed's answers become 403s: the users see refusals, the 5xx count stays zero.
BAD_CLIENT_ERRORS = ScriptedCommit(
    "client-errors", "Hold the feeds of accounts under moderation review", "Ines Duarte", "client-errors", "stop",
    edits=(Edit(FEED, FEED_IMPORT, "from fastapi import APIRouter, HTTPException, Query\n"),
           Edit(FEED, FEED_VIEWER, FEED_VIEWER
                + "    if viewer.username in {\"dave\", \"erin\"}:  # exported from the review queue\n"
                  "        raise HTTPException(status_code=403, detail=\"this feed is held for review\")\n")))
REVERT_CLIENT_ERRORS = ScriptedCommit("revert-client-errors", "", "Ines Duarte", "revert", "ship",
                                      reverts="client-errors")
# One feed load in four, for users who follow three accounts or more, waits 1.5 s for a
# synchronous ranking refresh: a tail regression that leaves the median untouched. The
# benchmark's feed user follows two accounts, so the merge check passes; real users have
# larger networks, and only the canary shows it.
BAD_TAIL = ScriptedCommit(
    "tail-latency", "Refresh the ranking of large networks on a sample of feed loads", "Jon Berg", "tail-latency",
    "stop",
    edits=(Edit(FEED, "from typing import Annotated\n", "import random\nimport time\nfrom typing import Annotated\n"),
           Edit(FEED, FEED_FOLLOWEES, FEED_FOLLOWEES
                + "    if random.random() < 1 / 4 and len(session.exec(followees).all()) >= 3:  # keep rankings fresh\n"
                  "        time.sleep(1.5)\n")))
REVERT_TAIL = ScriptedCommit("revert-tail-latency", "", "Jon Berg", "revert", "ship", reverts="tail-latency")
BAD_LEAK = ScriptedCommit(
    "memory-leak", "Keep rendered feeds in memory for faster reloads", "Ivan Petrov", "memory-leak", "stop",
    edits=(Edit(FEED, 'router = APIRouter(prefix="/api", tags=["feed"])\n',
                'router = APIRouter(prefix="/api", tags=["feed"])\n'
                "_RENDERED_FEEDS: list[bytes] = []  # never evicted\n"),
           Edit(FEED, FEED_DOC, FEED_DOC + "    _RENDERED_FEEDS.append(b\"\\x01\" * 400_000)\n")))
REVERT_LEAK = ScriptedCommit("revert-leak", "", "Ivan Petrov", "revert", "ship", reverts="memory-leak")
GOOD_BATCHED = ScriptedCommit(
    "caption-limit", "Accept captions up to 2,500 characters", "Ana Lima", "good", "ship",
    edits=(Edit(POSTS, "Form(max_length=2200)", "Form(max_length=2500)"),))
BAD_BATCHED = ScriptedCommit(
    "post-view-errors", "Count views of recent posts", "Ben Okafor", "error-spike", "stop",
    edits=(Edit(POSTS, POST_ANCHOR, POST_ANCHOR
                + "    if post.id > 40:  # recent posts: views go to the new counter service\n"
                  "        raise RuntimeError(\"view counter service refused the update\")\n"),))
REVERT_BATCHED = ScriptedCommit("revert-post-view-errors", "", "Ben Okafor", "revert", "ship",
                                reverts="post-view-errors")
GOOD_FINAL = ScriptedCommit(
    "readme", "Explain how to run the app locally", "Dana Cruz", "good", "ship",
    new_files={"README.md": "# Snapgram\n\nA small photo-sharing app: users, posts, likes, comments, follows.\n\n"
                            "Run it with `python -m sample_app --port 8101` and open http://127.0.0.1:8101/.\n"})

# Each inner list is merged together: a release holds at most a few commits.
STEPS: list[list[ScriptedCommit]] = [
    [GOOD_IMAGE_CACHE, GOOD_COMMENT_PAGE],
    [BAD_TESTS],
    [GOOD_DOCS],
    [BAD_BENCH],
    [BAD_CRASH],
    [REVERT_CRASH],
    [BAD_ERRORS],
    [REVERT_ERRORS],
    [BAD_LATENCY],
    [FIX_LATENCY],
    [BAD_CPU],
    [REVERT_CPU],
    [BAD_CLIENT_ERRORS],
    [REVERT_CLIENT_ERRORS],
    [BAD_TAIL],
    [REVERT_TAIL],
    [BAD_LEAK],
    # Three at once, one of them bad: the release fails and the culprit search finds which.
    [REVERT_LEAK, GOOD_BATCHED, BAD_BATCHED],
    [REVERT_BATCHED, GOOD_FINAL],
]


def apply_edits(root: Path, commit: ScriptedCommit) -> list[str]:
    """Apply a commit's edits and new files under `root`; returns the paths touched."""
    touched = []
    for edit in commit.edits:
        path = root / edit.path
        if not path.is_file():
            raise ScenarioError(f"{commit.key}: {edit.path} does not exist in the app")
        text = path.read_text()
        found = text.count(edit.old)
        if found != 1:
            raise ScenarioError(f"{commit.key}: expected the text {edit.old!r} once in {edit.path}, found {found}")
        path.write_text(text.replace(edit.old, edit.new))
        touched.append(edit.path)
    for relative, content in commit.new_files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        touched.append(relative)
    return touched
