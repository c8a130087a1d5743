"""What a template's text must and must not say, by locale (PROVIDERS.md §5).

- Mainland China: a marketing template must *end* with 拒收请回复R (Aliyun's template rules,
  Tencent's ``MarketingTemplateWithoutUnsubscribe``). The older 回T退订 forms were accepted once and
  are not any more. A notification (transactional) template must not carry that wording: the
  consoles review such a template as marketing.
- Elsewhere: a marketing template tells the customer how to opt out, "Reply STOP to opt out"
  (CTIA practice; STOP is the keyword carriers and Nudge's reply handling recognise everywhere).
- Every locale: placeholders are ``${name}``; the signature 【…】 is the provider's to add.

These are pure functions: the registry calls them on put, submit and approve.
"""

from __future__ import annotations

import re

from nudge.models import Category

ZH_OPT_OUT = "拒收请回复R"
LEGACY_ZH_OPT_OUTS = ("回TD退订", "回T退订", "退订回T")
"""Opt-out forms Tencent accepted before 拒收请回复R became the rule on every mainland console."""
EN_OPT_OUT_EXAMPLE = "Reply STOP to opt out"

_STOP = re.compile(r"\b(?:reply|text|txt|send|respond)\s+(?:with\s+)?[\"'“‘]?stop\b", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_PLACEHOLDER_START = re.compile(r"\$\{")
_VALID_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_POSITIONAL = re.compile(r"(?<!\$)\{\d+\}")


def is_chinese(body: str, language: str | None) -> bool:
    """The mainland rules apply to a ``zh`` variant, and to a default variant written in Chinese."""
    if language:
        return language.lower().split("-")[0] == "zh"
    return _CJK.search(body) is not None


def opt_out_wording_problem(body: str, language: str | None) -> str | None:
    """Why ``body`` cannot be approved as a marketing template in ``language``, or None."""
    if is_chinese(body, language):
        if body.rstrip().endswith(ZH_OPT_OUT):
            return None
        if ZH_OPT_OUT in body:
            return f"a Chinese marketing template must end with {ZH_OPT_OUT}; here it is not at the end"
        legacy = next((form for form in LEGACY_ZH_OPT_OUTS if form in body), None)
        if legacy is not None:
            return (
                f"{legacy} is the older opt-out wording that Aliyun and Tencent no longer accept; "
                f"end a Chinese marketing template with {ZH_OPT_OUT}"
            )
        return f"a Chinese marketing template must end with {ZH_OPT_OUT}"
    if _STOP.search(body):
        return None
    return f"a marketing template must tell the customer how to opt out, e.g. {EN_OPT_OUT_EXAMPLE!r}"


def transactional_wording_problem(body: str, language: str | None) -> str | None:
    """Why ``body`` cannot be approved as a transactional (notification) template, or None."""
    if not is_chinese(body, language):
        return None
    found = next((form for form in (ZH_OPT_OUT, *LEGACY_ZH_OPT_OUTS) if form in body), None)
    if found is None:
        return None
    return (
        f"a Chinese notification template must not contain the marketing opt-out wording {found}: "
        "the providers would review it as marketing; make it a marketing template or drop the wording"
    )


def approval_problem(body: str, category: Category, language: str | None) -> str | None:
    """Why a template of ``category`` with this body cannot be approved, or None."""
    if category is Category.MARKETING:
        return opt_out_wording_problem(body, language)
    return transactional_wording_problem(body, language)


def body_problem(body: str) -> str | None:
    """Why ``body`` is not a well-formed template, whatever its state, or None."""
    for start in _PLACEHOLDER_START.finditer(body):
        if not _VALID_PLACEHOLDER.match(body, start.start()):
            fragment = body[start.start() : start.start() + 20]
            return (
                f"unknown placeholder syntax at {fragment!r}: write ${{name}}, a letter or _ "
                "followed by letters, digits or _"
            )
    positional = _POSITIONAL.search(body)
    if positional is not None:
        return (
            f"unknown placeholder syntax {positional.group()!r}: write ${{name}}; Tencent's numbered "
            "form is derived from the names"
        )
    if "【" in body or "】" in body:
        return "do not put 【…】 in the body: the provider adds the signature in front of it"
    return None
