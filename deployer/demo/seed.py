"""Give the demo's app some content before users arrive: follows and a few dozen photo posts."""

from __future__ import annotations

import random

import httpx

from deployer.loadgen.traffic import DEFAULT_USERS, tiny_png

CAPTIONS = ("Sunrise over the harbour", "Lunch!", "New bike", "Weekend hike", "Street art", "Rainy Monday",
            "Our cat, again", "Coffee first", "Concert last night", "Garden update")


def seed_content(base_url: str, *, posts: int = 48, seed: int = 1) -> int:
    """Create follows between the demo users and `posts` posts; returns how many posts exist."""
    rng = random.Random(seed)
    users = list(DEFAULT_USERS)
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        for user in users:
            for other in rng.sample([u for u in users if u != user], k=min(3, len(users) - 1)):
                client.post(f"/api/users/{other}/follow", json={"follower": user}).raise_for_status()
        for i in range(posts):
            author = users[i % len(users)]
            response = client.post("/api/posts", data={"author": author, "caption": rng.choice(CAPTIONS)},
                                   files={"image": (f"photo-{i}.png", tiny_png(rng), "image/png")})
            response.raise_for_status()
        return posts
