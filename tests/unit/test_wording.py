"""The opt-out wording rules by locale, and the template body's syntax (``nudge.wording``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activities.compliance.registry import opt_out_wording_problem
from nudge.models import Category
from nudge.templates import builtin_templates
from nudge.wording import ZH_OPT_OUT, approval_problem, body_problem, transactional_wording_problem

ZH_TEXT = st.text(alphabet="你好春季特惠订单已发货，。！${}abc123 ", max_size=40)


def test_opt_out_zh_ending_with_refusal_wording_passes() -> None:
    """A Chinese marketing body that ends with 拒收请回复R (trailing spaces allowed) is fine."""
    assert opt_out_wording_problem("${name}，春季特惠 ${url} 拒收请回复R", "zh") is None
    assert opt_out_wording_problem("春季特惠 拒收请回复R \n", "zh-CN") is None


def test_opt_out_zh_wording_in_the_middle_is_refused() -> None:
    """拒收请回复R must be at the end, not somewhere in the text."""
    problem = opt_out_wording_problem("拒收请回复R 春季特惠 ${url}", "zh")
    assert problem is not None and "not at the end" in problem


@pytest.mark.parametrize("legacy", ["回T退订", "退订回T", "回TD退订"])
def test_opt_out_zh_legacy_forms_are_refused_with_the_new_wording(legacy: str) -> None:
    """The older 回T退订 forms are no longer accepted; the reason names the form to use."""
    problem = opt_out_wording_problem(f"春季特惠 ${{url}} {legacy}", "zh")
    assert problem is not None and legacy in problem and ZH_OPT_OUT in problem


def test_opt_out_default_variant_in_chinese_follows_the_mainland_rule() -> None:
    """A default variant (no language) written in Chinese needs 拒收请回复R, not Reply STOP."""
    assert opt_out_wording_problem("春季特惠 Reply STOP to opt out", "") is not None
    assert opt_out_wording_problem("春季特惠 拒收请回复R", "") is None


@pytest.mark.parametrize(
    "body",
    [
        "Sale today! Reply STOP to opt out",
        "Sale: reply stop to unsubscribe",
        "Text STOP to quit",
        "Txt 'STOP' to end",
    ],
)
def test_opt_out_english_stop_wording_passes(body: str) -> None:
    """Reply/Text STOP wording is accepted in any case, quoted or not."""
    assert opt_out_wording_problem(body, "en") is None


@pytest.mark.parametrize("body", ["Sale today!", "Stop by our store", "Reply to stop? no", "We stopped"])
def test_opt_out_english_without_stop_instruction_is_refused(body: str) -> None:
    """A body that does not tell how to opt out (the word stop alone is not enough) is refused."""
    problem = opt_out_wording_problem(body, "en")
    assert problem is not None and "Reply STOP to opt out" in problem


@given(prefix=ZH_TEXT, trailing=st.sampled_from(["", " ", "\n", "  \t"]))
def test_opt_out_zh_any_text_ending_with_the_wording_passes(prefix: str, trailing: str) -> None:
    """Whatever comes before it, a body ending with 拒收请回复R passes the zh rule."""
    assert opt_out_wording_problem(f"{prefix}{ZH_OPT_OUT}{trailing}", "zh") is None


@given(prefix=ZH_TEXT, suffix=ZH_TEXT.filter(lambda s: s.strip() != ""))
def test_opt_out_zh_text_after_the_wording_fails(prefix: str, suffix: str) -> None:
    """Anything but whitespace after the last 拒收请回复R breaks the zh rule."""
    assert opt_out_wording_problem(f"{prefix}{ZH_OPT_OUT}{suffix}", "zh") is not None


@given(
    verb=st.sampled_from(["reply", "text", "txt"]), flips=st.lists(st.booleans(), min_size=10, max_size=10)
)
def test_opt_out_english_is_case_insensitive(verb: str, flips: list[bool]) -> None:
    """Reply STOP is recognised in any mix of upper and lower case."""
    phrase = f"{verb} stop"
    mixed = "".join(c.upper() if flip else c for c, flip in zip(phrase, flips, strict=False))
    assert opt_out_wording_problem(f"Deals inside. {mixed} to opt out", "en") is None


def test_transactional_zh_with_refusal_wording_is_refused() -> None:
    """A Chinese notification must not carry 拒收请回复R; English ones may say STOP."""
    assert transactional_wording_problem("您的订单已发货 拒收请回复R", "zh") is not None
    assert transactional_wording_problem("您的订单已发货", "zh") is None
    assert transactional_wording_problem("Shipped. Reply STOP to opt out", "en") is None


def test_approval_problem_checks_by_category() -> None:
    """Marketing needs the opt-out wording; transactional is checked for the opposite."""
    assert approval_problem("Order shipped", Category.TRANSACTIONAL, "en") is None
    assert approval_problem("Order shipped", Category.MARKETING, "en") is not None


def test_builtin_templates_pass_their_approval_rules() -> None:
    """The built-in templates, seeded as approved, meet the rules an operator's would."""
    for template in builtin_templates():
        assert approval_problem(template.body, template.category, template.language) is None, template.code
        assert body_problem(template.body) is None, template.code


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hi ${1name}", "unknown placeholder syntax"),
        ("Hi ${name", "unknown placeholder syntax"),
        ("Hi {1}, your order", "unknown placeholder syntax '{1}'"),
        ("【Nudge】Hi ${name}", "do not put 【…】"),
    ],
)
def test_body_problem_names_the_bad_syntax(body: str, expected: str) -> None:
    """Malformed and positional placeholders, and a signature in the text, are refused."""
    problem = body_problem(body)
    assert problem is not None and expected in problem


def test_body_problem_accepts_placeholders_and_dollar_amounts() -> None:
    """Well-formed ${name} placeholders and a plain $ sign are fine."""
    assert body_problem("${name}: $5 off with ${code_1}") is None
