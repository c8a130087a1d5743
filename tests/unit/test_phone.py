from __future__ import annotations

import pytest

from nudge.errors import InvalidPhoneNumber
from nudge.phone import mask, mask_in_text, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+86 138 0013 8000", "CN", "+8613800138000"),
        ("138-0013-8000", "CN", "+8613800138000"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("+1 650 253 0000", "CN", "+16502530000"),
    ],
)
def test_to_e164_normalises_cn_and_us_numbers(raw: str, region: str, expected: str) -> None:
    """Numbers with or without a country code come out in E.164; the region fills a missing one."""
    assert to_e164(raw, default_region=region) == expected


def test_to_e164_default_region_is_china() -> None:
    """A national number with no region given is read as Chinese."""
    assert to_e164("13800138000") == "+8613800138000"


@pytest.mark.parametrize("raw", ["12345", "not a number", "+86 123", ""])
def test_to_e164_invalid_number_raises(raw: str) -> None:
    """Unparseable or invalid numbers raise InvalidPhoneNumber (an InvalidInput)."""
    with pytest.raises(InvalidPhoneNumber):
        to_e164(raw)


def test_mask_keeps_prefix_and_last_four() -> None:
    """Masking keeps the country prefix and the last four digits, and hides the rest."""
    masked = mask("+8613800138000")
    assert masked == "+86*******8000"
    assert "138001" not in masked


def test_mask_national_number_keeps_only_last_four() -> None:
    """A number without an international prefix shows nothing but its last four digits."""
    assert mask("4155552671") == "******2671"
    assert mask_in_text("call (415) 555-2671 now") == "call (******2671 now"


def test_mask_short_input_is_fully_hidden() -> None:
    """Something too short to be a number is hidden entirely."""
    assert mask("123456") == "******"


def test_mask_in_text_masks_numbers_and_keeps_words() -> None:
    """Every phone number in free text is masked; the surrounding text is untouched."""
    text = "sent to +86 138-0013-8000 and +16502530000 ok"
    masked = mask_in_text(text)
    assert masked == "sent to +86*******8000 and +16*****0000 ok"
    assert "0013" not in masked and "253" not in masked


def test_mask_in_text_leaves_short_numbers() -> None:
    """Short digit runs such as amounts and years are not mistaken for phone numbers."""
    assert mask_in_text("total 42.00 in 2024") == "total 42.00 in 2024"


def test_mask_in_text_leaves_hex_ids_alone() -> None:
    """Message ids (hex) that start with a run of digits are not phone numbers."""
    assert (
        mask_in_text("message 84325567b86042e5bca1d3c9db244de9") == "message 84325567b86042e5bca1d3c9db244de9"
    )
    assert mask_in_text("to 13800138000, id 13800138000abc") == "to *******8000, id 13800138000abc"
