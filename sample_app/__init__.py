"""Snapgram: a small Instagram-style photo sharing app (users, follows, posts, likes, comments)."""
