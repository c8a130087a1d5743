"""Reply keywords in English and Chinese."""

from __future__ import annotations

import pytest

from nudge.keywords import classify_reply


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP", "stop"),
        (" stop ", "stop"),
        ("Unsubscribe", "stop"),
        ("opt  out", "stop"),
        ("R", "stop"),
        ("td", "stop"),
        ("退订", "stop"),
        ("START", "start"),
        ("unstop", "start"),
        ("HELP", "help"),
        ("info!", "help"),
        ("please stop texting me", None),
        ("thanks", None),
    ],
)
def test_classify_reply_matches_whole_message(text: str, keyword: str | None) -> None:
    """Only a whole-message keyword counts, whatever its case and surrounding spaces."""
    assert classify_reply(text) == keyword
