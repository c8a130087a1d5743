from __future__ import annotations

import asyncio
import hashlib

import phonenumbers
import pytest

from nudge.errors import InvalidPhoneNumber
from nudge.phone import mask, mask_in_text, parse_number, parsing_once, phone_hash, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+86 138 0013 8000", "CN", "+8613800138000"),
        ("138-0013-8000", "CN", "+8613800138000"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("+1 650 253 0000", "CN", "+16502530000"),
    ],
    ids=["cn-international", "cn-national-dashes", "us-national", "us-international-cn-region"],
)
def test_to_e164_normalises_cn_and_us_numbers(raw: str, region: str, expected: str) -> None:
    """Numbers with or without a country code come out in E.164; the region fills a missing one."""
    assert to_e164(raw, default_region=region) == expected


def test_to_e164_default_region_is_china() -> None:
    """A national number with no region given is read as Chinese."""
    assert to_e164("13800138000") == "+8613800138000"


@pytest.mark.parametrize(
    "raw", ["12345", "not a number", "+86 123", ""], ids=["short", "words", "short-cn", "empty"]
)
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


@pytest.mark.parametrize("raw", ["not a number", ""], ids=["words", "empty"])
def test_to_e164_unparseable_number_says_why(raw: str) -> None:
    """A string that is no number at all is reported as unparseable, with phonenumbers' reason
    (the message the gateway returns per customer) and its exception as the cause."""
    with pytest.raises(InvalidPhoneNumber) as raised:
        to_e164(raw)
    assert str(raised.value) == (
        "cannot parse phone number: (1) The string supplied did not seem to be a phone number."
    )
    assert isinstance(raised.value.__cause__, phonenumbers.NumberParseException)


@pytest.mark.parametrize("raw", ["12345", "+86 123", "1380013800"], ids=["short", "short-cn", "ten-digit-cn"])
def test_to_e164_invalid_number_says_it_is_not_valid_for_its_region(raw: str) -> None:
    """A parseable string that is no valid number in its region gets that message."""
    with pytest.raises(InvalidPhoneNumber) as raised:
        to_e164(raw)
    assert str(raised.value) == "not a valid phone number for its region"


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("12345", "*****"),
        ("+12345", "******"),
        ("1234567", "***4567"),
        (" 12345678 ", "****5678"),
        ("+447911123456", "+44******3456"),
    ],
    ids=["five", "six-with-plus", "seven", "eight-padded", "uk"],
)
def test_mask_hides_all_of_a_short_input_and_all_but_four_of_a_longer_one(number: str, masked: str) -> None:
    """Six characters or fewer are all hidden; from seven on the last four show (after trimming)."""
    assert mask(number) == masked


def test_phone_hash_is_pinned_to_its_documented_formula() -> None:
    """The suppression key is sha256 of "nudge-suppression:<E.164>", hex: a change would forget
    every suppressed number."""
    expected = "52508cd3e5a154b8a9b5ec53877150181b078f8455ac4f04361ab518121fc12b"
    assert hashlib.sha256(b"nudge-suppression:+8613800138000").hexdigest() == expected
    assert phone_hash("+8613800138000") == expected


@pytest.mark.parametrize(
    "text",
    [
        "run 0192f3a4-5b6c-7d8e-9f01-234567890123",  # a run id whose last group is all digits
        "workflow journey:payment_success:c1:o-20261201123456",
        "customer cust-0001234567",
        "message m_12345678901",
    ],
)
def test_mask_in_text_leaves_digits_inside_ids(text: str) -> None:
    """Digits joined to an id by -, _ or . are part of it, not a phone number: ops need the whole
    id to find the run or the message."""
    assert mask_in_text(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call 13800138000.", "call *******8000."),
        ("to: +8613800138000", "to: +86*******8000"),
        ("numbers 13800138000,13900139000", "numbers *******8000,*******9000"),
        ("tel:13800138000", "tel:*******8000"),
        ("path /v1/customers/13800138000", "path /v1/customers/*******8000"),
        ("journey:cart_abandonment:13800138000:k1", "journey:cart_abandonment:*******8000:k1"),
    ],
)
def test_mask_in_text_still_masks_numbers_in_sentences(text: str, masked: str) -> None:
    """A number ending a sentence, after a colon, in a comma list, in a path or in a workflow id (a
    customer whose id is their number) is still masked."""
    assert mask_in_text(text) == masked


class CountedParse:
    """``phonenumbers.parse``, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._parse = phonenumbers.parse

    def __call__(self, *args: object, **kwargs: object) -> phonenumbers.PhoneNumber:
        self.calls += 1
        return self._parse(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> CountedParse:
    counter = CountedParse()
    monkeypatch.setattr(phonenumbers, "parse", counter)
    return counter


def test_a_number_is_parsed_every_time_outside_a_block(counted: CountedParse) -> None:
    for _ in range(3):
        number = parse_number("+8613800138000")
        assert number is not None and (number.country_code, number.national_number) == (86, 13800138000)
    assert counted.calls == 3
    assert parse_number("not a number") is None


async def test_inside_a_block_each_number_is_parsed_once_by_every_task(counted: CountedParse) -> None:
    """The tasks a batch starts share its numbers; what was not a number stays None; the numbers
    are gone after the block."""
    with parsing_once():

        async def route_and_time(to: str) -> tuple[int | None, int | None]:
            first, second = parse_number(to), parse_number(to)
            return (first.country_code if first else None, second.country_code if second else None)

        found = await asyncio.gather(
            *(route_and_time(to) for to in ("+8613800138000", "+16502530000", "x") * 3)
        )
        assert found == [(86, 86), (1, 1), (None, None)] * 3
        assert counted.calls == 3
        assert parse_number("x") is None
    parse_number("+8613800138000")
    assert counted.calls == 4


async def test_blocks_apart_do_not_share_their_numbers(counted: CountedParse) -> None:
    """Two batches at once, their blocks overlapping: each parses the number once, in its own
    block, and keeps it while the other enters and leaves (a block is its task's, not the worker's)."""
    a_in, b_in, a_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
    to = "+8613800138000"

    async def first() -> None:
        with parsing_once():
            parse_number(to)
            a_in.set()
            await b_in.wait()
            parse_number(to)
        a_out.set()

    async def second() -> None:
        await a_in.wait()
        with parsing_once():
            parse_number(to)
            b_in.set()
            await a_out.wait()
            parse_number(to)

    await asyncio.gather(first(), second())
    assert counted.calls == 2


def test_a_number_given_out_by_a_block_cannot_be_changed() -> None:
    with parsing_once():
        number = parse_number("+8613800138000")
        assert number is not None
        with pytest.raises(TypeError, match="immutable"):
            number.country_code = 1
