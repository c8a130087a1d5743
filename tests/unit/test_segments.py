from __future__ import annotations

import pytest

from nudge.segments import count_billed_segments, count_segments


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
    ids=["latin-sig-71", "latin-sig-70", "cjk-sig-157", "cjk-sig-134"],
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


GSM_EXTENSION = ["^", "{", "}", "\\", "[", "~", "]", "|", "€", "\f"]
"""The ten characters of the GSM-7 extension table (3GPP TS 23.038), each ESC + code: 2 septets."""


@pytest.mark.parametrize("char", GSM_EXTENSION, ids=[f"U+{ord(c):04X}" for c in GSM_EXTENSION])
def test_count_segments_extension_character_costs_two_septets(char: str) -> None:
    """Each extension character counts 2 septets: with 158 plain ones it is 160 (1 part), with 159
    it is 161 (2 parts); 80 of them fill one SMS, 81 need two."""
    assert count_segments(char + "a" * 158) == 1
    assert count_segments(char + "a" * 159) == 2
    assert count_segments(char * 80) == 1
    assert count_segments(char * 81) == 2
    # 153 escape pairs are 306 septets, yet a part holds only 76 of them (152 septets): 76+76+1.
    assert count_segments(char * 153) == 3


def test_count_segments_basic_table_characters_cost_one_septet() -> None:
    """Accented letters, Greek capitals and symbols of the basic table stay GSM-7 at 1 septet each."""
    basic = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r"
    text = (basic * 4)[:160]
    assert len(text) == 160
    assert count_segments(text) == 1
    assert count_segments(text + "a") == 2


@pytest.mark.parametrize(
    "char", ["á", "`", "“", "’", "\t"], ids=["U+00E1", "U+0060", "U+201C", "U+2019", "U+0009"]
)
def test_count_segments_non_gsm_character_switches_to_ucs2(char: str) -> None:
    """A character outside both GSM tables makes 100 characters UCS-2: 2 parts instead of 1."""
    assert count_segments("a" * 99 + char) == 2
    assert count_segments("a" * 69 + char) == 1


@pytest.mark.parametrize(
    ("length", "segments"),
    [(160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (612, 4), (613, 5)],
)
def test_count_segments_gsm7_part_boundaries(length: int, segments: int) -> None:
    """GSM-7: one SMS holds 160 septets, a multi-part message 153 per part (306, 459, 612...)."""
    assert count_segments("a" * length) == segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 151 + "{" + "a" * 8, 2),  # the pair ends part 1 exactly at 153
        ("a" * 151 + "{" + "a" * 153, 2),  # 153 + 153
        ("a" * 151 + "{" + "a" * 154, 3),
        ("a" * 152 + "{" + "a" * 7, 2),  # 161 septets: 152 + (2 + 7)
        ("a" * 152 + "{" + "a" * 151, 2),  # 152 + 153
        ("a" * 152 + "{" + "a" * 152, 3),  # 306 septets, but 152 + 153 + 1
        ("a" * 305 + "{" + "a" * 151, 3),  # 153 + 152 + 153
        ("a" * 305 + "{" + "a" * 152, 4),  # 459 septets, but 153 + 152 + 153 + 1
    ],
    ids=[
        "pair-ends-part-1",
        "pair-ends-part-1-then-full-part",
        "pair-ends-part-1-then-overflow",
        "pair-straddles-161",
        "pair-straddles-305",
        "pair-straddles-306",
        "pair-straddles-part-2-fits",
        "pair-straddles-part-2-overflows",
    ],
)
def test_count_segments_escape_pair_at_a_part_boundary(text: str, segments: int) -> None:
    """An escape pair that would straddle two 153-septet parts moves whole into the next one."""
    assert count_segments(text) == segments


@pytest.mark.parametrize(
    ("length", "segments"),
    [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4), (268, 4), (269, 5)],
)
def test_count_segments_ucs2_part_boundaries(length: int, segments: int) -> None:
    """UCS-2: one SMS holds 70 units, a multi-part message 67 per part (134, 201, 268...)."""
    assert count_segments("购" * length) == segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("😜" * 35, 1),  # 70 units
        ("😜" * 36, 2),  # 72 units: 33 emoji (66 units) per part
        ("😜" * 66, 2),  # 132 units: 66 + 66
        ("😜" * 67, 3),  # 134 units, yet 66 + 66 + 2
        ("购" * 66 + "😜" + "购" * 3, 2),  # 71 units: 66 + (2 + 3)
        ("购" * 66 + "😜" + "购" * 65, 2),  # 133 units: 66 + 67
        ("购" * 66 + "😜" + "购" * 66, 3),  # 134 units, yet 66 + 67 + 1
        ("购" * 65 + "😜" + "购" * 67, 2),  # the pair ends part 1 exactly at 67
        ("购" * 67 + "😜" + "购" * 65, 2),  # part 1 full, the pair opens part 2
        ("购" * 67 + "😜" + "购" * 66, 3),
    ],
    ids=[
        "35-emoji",
        "36-emoji",
        "66-emoji",
        "67-emoji",
        "emoji-at-66-short",
        "emoji-at-66-fits",
        "emoji-at-66-overflows",
        "emoji-ends-part-1",
        "emoji-opens-part-2",
        "emoji-opens-part-2-overflows",
    ],
)
def test_count_segments_surrogate_pair_at_a_part_boundary(text: str, segments: int) -> None:
    """An emoji is 2 UCS-2 units and never straddles two 67-unit parts (a part may hold 66)."""
    assert count_segments(text) == segments


@pytest.mark.parametrize(
    ("signature", "body_length", "segments"),
    [
        ("Nudge", 63, 1),  # 【Nudge】 is 7: 70 in all
        ("Nudge", 64, 2),  # 71
        ("Nudge", 127, 2),  # 134 = 2 x 67
        ("Nudge", 128, 3),  # 135
        ("Nudge", 194, 3),  # 201 = 3 x 67
        ("Nudge", 195, 4),  # 202
        ("努济", 66, 1),  # 【努济】 is 4: 70 in all
        ("努济", 67, 2),  # 71
        ("努济", 130, 2),  # 134
        ("努济", 131, 3),  # 135
        ("努济", 0, 1),
    ],
    ids=lambda value: ("cjk-sig" if value == "努济" else "latin-sig") if isinstance(value, str) else None,
)
def test_count_mainland_segments_boundaries_with_the_bracketed_signature(
    signature: str, body_length: int, segments: int
) -> None:
    """Mainland billing: 【signature】 plus body, 70 characters for one SMS, then parts of 67."""
    from nudge.segments import count_mainland_segments

    for char in ["购", "a", "{"]:  # Chinese, Latin and GSM extension characters all count one
        assert count_mainland_segments(char * body_length, signature=signature) == segments, char


@pytest.mark.parametrize(
    ("char", "units"),
    [("\ud7ff", 1), ("\ue000", 1), ("\uffff", 1), ("\U00010000", 2), ("\U0001f600", 2), ("\U0010ffff", 2)],
    ids=["U+D7FF", "U+E000", "U+FFFF", "U+10000", "U+1F600", "U+10FFFF"],
)
def test_count_segments_ucs2_units_split_at_the_end_of_the_bmp(char: str, units: int) -> None:
    """Up to U+FFFF a character is one UTF-16 unit, from U+10000 on a surrogate pair of two: 35 of
    them fit one SMS either way, 36 fit one only if each is a single unit."""
    assert len(char.encode("utf-16-le")) // 2 == units  # the oracle: UTF-16 code units
    assert count_segments(char * 35) == 1
    assert count_segments(char * 36) == (1 if units == 1 else 2)
    assert count_segments(char * 70) == (1 if units == 1 else 3)  # 140 units: 33 + 33 + 4 pairs


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_count_billed_segments_mainland_providers_count_the_signature_to_a_mainland_number(
    provider: str,
) -> None:
    """Aliyun and Tencent bill 【signature】 + body to +86: 64 + 7 = 71 characters is 2 parts there,
    1 part (70 UCS-2 units or fewer) to another country or through Twilio."""
    body = "购" * 64
    assert count_billed_segments(body, provider=provider, to="+8613800138000", signature="Nudge") == 2
    assert count_billed_segments(body, provider=provider, to="+8613800138000", signature="努") == 1
    assert count_billed_segments(body, provider=provider, to="+15005550006", signature="Nudge") == 1
    assert count_billed_segments(body, provider="twilio", to="+8613800138000", signature="Nudge") == 1
    # Elsewhere the carrier's own count applies: 71 UCS-2 units are 2 parts, 161 GSM-7 septets too.
    assert count_billed_segments("购" * 71, provider=provider, to="+15005550006", signature="Nudge") == 2
    assert count_billed_segments("a" * 161, provider="twilio", to="+8613800138000", signature="Nudge") == 2
