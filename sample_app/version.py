"""Which build of the app is running: the commit sha the release was built from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The builder copies this package into a release directory and writes the commit sha
# to REVISION at that directory's root, i.e. next to the package folder.
RELEASE_ROOT = Path(__file__).resolve().parent.parent
UNKNOWN = "unknown"


def read_version(environ: Mapping[str, str] | None = None, root: Path | None = None) -> str:
    """Return SAMPLE_APP_VERSION, else the release root's REVISION file, else "unknown"."""
    env = os.environ if environ is None else environ
    from_env = env.get("SAMPLE_APP_VERSION", "").strip()
    if from_env:
        return from_env
    revision_file = (RELEASE_ROOT if root is None else root) / "REVISION"
    try:
        text = revision_file.read_text(encoding="utf-8").strip()
    except OSError:
        return UNKNOWN
    # Only the first line counts: a builder may append details below the sha.
    return text.splitlines()[0].strip() if text else UNKNOWN
