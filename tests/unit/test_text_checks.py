"""The character checks on URLs and on what an AS answers take a regex path for ASCII text (a registration's
answer went through them character by character, ~0.2 ms per client in the operator's profile). Both paths
must refuse exactly the same characters: checked here for every ASCII character and a set of non-ASCII ones."""

from __future__ import annotations

import unicodedata

import pytest

from clientreg.errors import first_unprintable, has_space_or_unprintable, is_unprintable
from clientreg.redirects import check_uri_text

NON_ASCII = ["\u00a0", "\u0085", "\u061c", "\u200b", "\u200e", "\u202e", "\u2028", "\u2029", "\u2066", "\ufeff",
             "\ue000", "\u00e9", "\u4e2d", "\U0001f600", "\ud800"]
CHARACTERS = [chr(i) for i in range(128)] + NON_ASCII


def _refused_in_a_uri(char: str) -> bool:
    """check_uri_text's rule, written out: whitespace, controls, separators, formatting
    (bidi included), private-use and surrogate characters, and the backslash."""
    return (char.isspace() or char == "\\"
            or unicodedata.category(char) in ("Cc", "Zs", "Zl", "Zp", "Cf", "Co", "Cs"))


def _reference_first_unprintable(text: str) -> int | None:
    return next((i for i, c in enumerate(text) if is_unprintable(c)), None)


@pytest.mark.parametrize("char", CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_the_fast_paths_refuse_exactly_what_the_per_character_rules_refuse(char: str) -> None:
    for text in (f"https://as.example/{char}x", f"{char}", f"abc{char}"):
        assert has_space_or_unprintable(text) is any(c.isspace() or is_unprintable(c) for c in text)
        assert first_unprintable(text) == _reference_first_unprintable(text)
        refused = any(_refused_in_a_uri(c) for c in text)
        if refused:
            with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
                check_uri_text(text)
        else:
            check_uri_text(text)


def test_the_position_is_the_first_one() -> None:
    assert first_unprintable("ab\x1bc\x07") == 2 and first_unprintable("é\u202ex\x00") == 1
    assert first_unprintable("plain") is None and first_unprintable("") is None
