"""Which known name a misspelt one stands for: the one closeness rule behind "did you mean".

A name is a near miss of a known one when, ignoring case, `_` and `-`, it is the same word, its
plural or singular, or (for words of five letters or more) one keystroke away: a letter wrong,
missing or extra, or two neighbours swapped. With `leading_words`, the leading words of a compound
known name count too (`duration` and `durations` for `duration_seconds`), so a half-remembered field
name is caught. The rule is deliberately narrow: a provider's own field (`video_id`, `last_image`,
`speed`) must not pass for a typo of a unified one (`video`, `mask_image`, `seed`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_SEPARATORS = re.compile(r"[_\-\s]")
MIN_TYPO_LENGTH = 5  # shorter words are too close to each other for one keystroke to mean a typo


def normalize(name: str) -> str:
    """`aspectRatio`, `aspect-ratio` and `aspect_ratio` are one name."""
    return _SEPARATORS.sub("", name).lower()


def one_edit_apart(a: str, b: str) -> bool:
    """One letter substituted, inserted or deleted, or two adjacent letters swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        i, j = diffs if len(diffs) == 2 else (0, 0)
        return j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def _words(known: str, leading_words: bool) -> list[str]:
    if not leading_words:
        return [known]
    parts = [p for p in _SEPARATORS.split(known) if p]
    return ["_".join(parts[:i]) for i in range(1, len(parts) + 1)]


def is_near_miss(name: str, known: str, *, leading_words: bool = False) -> bool:
    """Whether `name` looks like a misspelling of `known` (see the module docstring)."""
    if name == known:
        return False
    typed = normalize(name)
    for word in _words(known, leading_words):
        meant = normalize(word)
        if not meant:
            continue
        if typed == meant:
            return True
        if (len(meant) >= 3 and typed in (meant + "s", meant + "es")) or (len(typed) >= 3 and meant == typed + "s"):
            return True
        if min(len(typed), len(meant)) >= MIN_TYPO_LENGTH and one_edit_apart(typed, meant):
            return True
        if len(typed) == len(meant) >= 4 and sorted(typed) == sorted(meant) and one_edit_apart(typed, meant):
            return True  # two neighbours swapped (`szie`): a typo even in a short word
    return False


def near_misses(name: str, known: Iterable[str], *, leading_words: bool = False) -> list[str]:
    """The known names `name` is a near miss of, closest first."""
    hits = {k for k in known if is_near_miss(name, k, leading_words=leading_words)}
    return sorted(hits, key=lambda k: (-difflib.SequenceMatcher(None, name, k).ratio(), k))


def closest(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The known names most like `name` (a looser rule than a near miss), for "closest available" lists."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)


def did_you_mean(candidates: list[str]) -> str:
    """`; did you mean 'a'?` (or 'a' or 'b'), or nothing when there is no candidate."""
    if not candidates:
        return ""
    return f"; did you mean {' or '.join(repr(c) for c in candidates[:3])}?"


__all__ = ["normalize", "one_edit_apart", "is_near_miss", "near_misses", "closest", "did_you_mean"]
