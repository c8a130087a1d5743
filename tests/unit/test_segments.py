from __future__ import annotations

import pytest

from nudge.segments import count_segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" + "1" * 158, 1),
        ("{" + "1" * 159, 2),
        ("😜" + "a" * 68, 1),
        ("😜" + "a" * 69, 2),
        ("购" * 70, 1),
        ("购" * 71, 2),
        ("购" * 134, 2),
        ("购" * 135, 3),
        ("", 1),
    ],
    ids=[
        "gsm-160",
        "gsm-161",
        "gsm-306",
        "gsm-307",
        "gsm-escape-160-septets",
        "gsm-escape-161-septets",
        "emoji-70-units",
        "emoji-71-units",
        "chinese-70",
        "chinese-71",
        "chinese-134",
        "chinese-135",
        "empty",
    ],
)
def test_count_segments_matches_carrier_billing(text: str, segments: int) -> None:
    """GSM-7 bills 160/153 septets (escapes count twice), UCS-2 70/67 units (emoji count twice)."""
    assert count_segments(text) == segments


def test_count_segments_one_non_gsm_char_switches_to_ucs2() -> None:
    """A single non-GSM character turns a 1-part GSM message of 100 chars into 2 UCS-2 parts."""
    assert count_segments("a" * 100) == 1
    assert count_segments("a" * 99 + "ć") == 2
