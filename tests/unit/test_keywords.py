"""Reply keywords in English and Chinese."""

from __future__ import annotations

import pytest

from nudge.keywords import HELP_WORDS, START_WORDS, STOP_WORDS, classify_reply

PINYIN = {
    "退订": "tuiding",
    "取消": "quxiao",
    "拒收": "jushou",
    "退订了": "tuiding-le",
    "不退订": "bu-tuiding",
}


def _test_id(text: str) -> str:
    """A plain-ASCII test id without spaces, so that mutmut can select the test again by it."""
    if text in PINYIN:
        return PINYIN[text]
    if not text.strip():
        return f"blank-{len(text)}"
    return "_".join(text.split())


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
    ids=lambda value: _test_id(value) if isinstance(value, str) else "none",
)
def test_classify_reply_matches_whole_message(text: str, keyword: str | None) -> None:
    """Only a whole-message keyword counts, whatever its case and surrounding spaces."""
    assert classify_reply(text) == keyword


# The full lists, written out here rather than read from nudge.keywords, so a word dropped from
# (or added to) the product's sets fails a test. Sources: Twilio's default opt-out, opt-in and
# help keywords, the FCC's per-se revocations, and the mainland replies (R, TD, T, N, 退订...).
EXPECTED_STOP = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
    "R",
    "TD",
    "T",
    "N",
    "退订",
    "取消",
    "拒收",
]
EXPECTED_START = ["START", "YES", "UNSTOP"]
EXPECTED_HELP = ["HELP", "INFO"]
EXPECTED = (
    [(word, "stop") for word in EXPECTED_STOP]
    + [(word, "start") for word in EXPECTED_START]
    + [(word, "help") for word in EXPECTED_HELP]
)


def _forms(word: str) -> list[str]:
    """The ways a customer may type ``word``: any case, padded, with a final . or !."""
    return [word, word.lower(), word.capitalize(), f"  {word}\n", f"{word.lower()}!", f"\t{word}."]


@pytest.mark.parametrize(("word", "keyword"), EXPECTED, ids=[_test_id(word) for word, _ in EXPECTED])
def test_classify_reply_knows_every_keyword_in_every_form(word: str, keyword: str) -> None:
    """Each listed keyword classifies the same in upper, lower and title case, padded, or with ! or ."""
    for text in _forms(word):
        assert classify_reply(text) == keyword, text


def test_keyword_sets_are_exactly_the_expected_lists() -> None:
    """No keyword is missing from, or added to, the product's three sets."""
    assert (
        set(EXPECTED_STOP),
        set(EXPECTED_START),
        set(EXPECTED_HELP),
    ) == (STOP_WORDS, START_WORDS, HELP_WORDS)


def test_classify_reply_opt_out_with_any_inner_whitespace() -> None:
    """OPT OUT is matched with its two words separated by any run of whitespace."""
    for text in ["opt out", "OPT  OUT", "Opt\tOut", " opt \n out! "]:
        assert classify_reply(text) == "stop", text


@pytest.mark.parametrize(
    "text",
    [
        "STOP IT",
        "stopp",
        "CANCELLED",
        "R2",
        "please stop",
        "STOP STOP",
        "UN STOP",
        "OPT-OUT",
        "ENDING",
        "QUITE",
        "TT",
        "NO",
        "HELP ME",
        "INFORMATION",
        "STARTED",
        "YESS",
        "退订了",
        "不退订",
        "",
        "   ",
        "!",
        "STOPX",
        "helpx",
    ],
    ids=_test_id,
)
def test_classify_reply_ignores_near_misses(text: str) -> None:
    """A reply that only contains, extends or misspells a keyword is not a keyword (only a final
    '.' or '!' is dropped, no other trailing letter)."""
    assert classify_reply(text) is None
