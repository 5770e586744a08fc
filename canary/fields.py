"""Checked field types for the analysis configuration: each refusal says what is wrong and the fix.

Used as ``Annotated[float, Number(0, 100, "95")]``: the check runs before pydantic's own,
so the messages keep the configuration's style (``120 is not between 0 and 100; use e.g.
95``) and ``canary.config`` only puts the field path in front.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def _fail(message: str) -> PydanticCustomError:
    """Return the error the loader turns into 'path: message'."""
    # Braces in user values must not be read as placeholders of the template.
    return PydanticCustomError("canary", message.replace("{", "{{").replace("}", "}}"))


def fmt(v: float) -> str:
    """Format a number without a needless '.0'."""
    return str(int(v)) if float(v).is_integer() else str(v)


def Number(lo: float, hi: float, example: str, *, lo_open: bool = False, hi_open: bool = False) -> BeforeValidator:  # noqa: N802
    """A finite number within [lo, hi] (either bound optionally open)."""

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _fail(f"{v!r} is not a number; use e.g. {example}")
        if (v < lo or (lo_open and v == lo)) or (v > hi or (hi_open and v == hi)):
            if not math.isfinite(hi):
                phrase = f"not above {fmt(lo)}" if lo_open else f"below {fmt(lo)}"
            elif not lo_open and not hi_open:
                phrase = f"not between {fmt(lo)} and {fmt(hi)}"
            else:
                phrase = f"not in {'(' if lo_open else '['}{fmt(lo)}, {fmt(hi)}{')' if hi_open else ']'}"
            raise _fail(f"{fmt(v)} is {phrase}; use e.g. {example}")
        return float(v)

    return BeforeValidator(check)


def Count(lo: int, example: str) -> BeforeValidator:  # noqa: N802
    """A whole number of at least lo."""

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _fail(f"{v!r} is not a whole number of at least {lo}; use e.g. {example}")
        return v

    return BeforeValidator(check)


def Flag() -> BeforeValidator:  # noqa: N802
    """true or false, nothing that merely looks like it ('yes', 1)."""

    def check(v: Any) -> bool:
        if not isinstance(v, bool):
            raise _fail(f"{v!r} is not true or false; use true or false")
        return v

    return BeforeValidator(check)


def Name(example: str) -> BeforeValidator:  # noqa: N802
    """A non-empty string (a series, group or metric name)."""

    def check(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise _fail(f"{v!r} is not a name; use e.g. {example}")
        return v

    return BeforeValidator(check)


def Choice(enum: type[Enum]) -> BeforeValidator:  # noqa: N802
    """A member of enum, given by its value in any letter case."""

    def check(v: Any) -> Enum:
        try:
            return enum(v.lower()) if isinstance(v, str) else enum(v)
        except ValueError:
            options = ", ".join(str(e.value) for e in enum)
            raise _fail(f"{v!r} is not one of {options}; use one of them") from None

    return BeforeValidator(check)
