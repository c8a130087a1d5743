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


def test_count_segments_never_splits_an_escape_pair() -> None:
    """152 plain septets then '{' cannot share a 153-septet part: the pair moves to the next one."""
    assert count_segments("a" * 152 + "{" + "a" * 152) == 3
    assert count_segments("a" * 151 + "{" + "a" * 153) == 2


def test_count_segments_never_splits_a_surrogate_pair() -> None:
    """An emoji at a UCS-2 part boundary moves whole to the next part."""
    assert count_segments("购" * 66 + "😜" + "购" * 66) == 3
    assert count_segments("购" * 65 + "😜" + "购" * 67) == 2


@pytest.mark.parametrize(
    ("body", "signature", "segments"),
    [
        ("购" * 64, "Nudge", 2),  # 【Nudge】 is 7 characters: 71 in all
        ("购" * 63, "Nudge", 1),
        ("a" * 153, "努济", 3),  # 157 characters: 67 + 67 + 23
        ("a" * 130, "努济", 2),
    ],
)
def test_count_mainland_segments_counts_the_signature(body: str, signature: str, segments: int) -> None:
    """Aliyun and Tencent bill 70 characters, signature in 【】 included, then parts of 67."""
    from nudge.segments import count_mainland_segments

    assert count_mainland_segments(body, signature=signature) == segments


def test_count_billed_segments_depends_on_provider_and_destination() -> None:
    """The same 150 GSM characters are 1 part on Twilio, 3 on Aliyun to a mainland number."""
    from nudge.segments import count_billed_segments

    text = "a" * 150
    assert count_billed_segments(text, provider="twilio", to="+8613800138000", signature="Nudge") == 1
    assert count_billed_segments(text, provider="aliyun", to="+8613800138000", signature="Nudge") == 3
    assert count_billed_segments(text, provider="aliyun", to="+15005550006", signature="Nudge") == 1
