"""Message templates and rendering.

Templates use ``${var}`` placeholders, as Aliyun templates do. Aliyun and Tencent send only
templates approved in their consoles, by code: ``provider_codes`` maps a provider to the code its
console gave the same text (Tencent's copy numbers the placeholders ``{1}``, ``{2}``... in order of
first appearance; see ``Template.positional_body``). This module holds the built-in templates the
example journeys use; the registry (``activities.compliance.registry``) stores them, with the operators' own
templates, their language variants and their approval state, and the send gate reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nudge.errors import TemplateError
from nudge.models import Category

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_LANGUAGE = ""
"""The language of a template's default variant: the one sent when no variant has the
customer's language."""


class ApprovalStatus(StrEnum):
    """Where a template or a signature stands in review; only ``approved`` ones are sent."""

    DRAFT = "draft"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Template:
    code: str
    body: str
    category: Category
    provider_codes: Mapping[str, str] = field(default_factory=dict)
    """Provider name -> the code of this template approved in that provider's console."""
    language: str = DEFAULT_LANGUAGE
    """The variant's language (the customer attribute ``language``); empty for the default."""
    status: ApprovalStatus = ApprovalStatus.APPROVED
    """The registry's approval state; the built-in templates are approved."""
    signature: str | None = None
    """The signature (SignName) this template is bound to, instead of the route's."""

    @property
    def variables(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.body))

    @property
    def ordered_variables(self) -> list[str]:
        """Variables in order of first appearance: Tencent's positional ``{1}``, ``{2}``..."""
        return list(dict.fromkeys(_PLACEHOLDER.findall(self.body)))

    @property
    def positional_body(self) -> str:
        """The body with ``{1}``, ``{2}``... placeholders, as a Tencent console holds it."""
        index = {name: i for i, name in enumerate(self.ordered_variables, start=1)}
        return _PLACEHOLDER.sub(lambda m: "{" + str(index[m.group(1)]) + "}", self.body)

    def render(self, params: dict[str, Any]) -> str:
        """Fill every placeholder; a missing or non-scalar value is a ``TemplateError``."""
        missing = sorted(self.variables - params.keys())
        if missing:
            raise TemplateError(f"template {self.code!r} is missing variables: {', '.join(missing)}")

        def fill(match: re.Match[str]) -> str:
            value = params[match.group(1)]
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise TemplateError(
                    f"template {self.code!r}: variable {match.group(1)!r} must be a string or "
                    f"number, not {type(value).__name__}"
                )
            return str(value)

        return _PLACEHOLDER.sub(fill, self.body)


BUILTIN_TEMPLATES: dict[str, Template] = {
    t.code: t
    for t in (
        Template(
            "cart_reminder",
            "${name}, your cart is waiting: ${cart_url} Reply STOP to opt out",
            Category.MARKETING,
            {"aliyun": "SMS_480001", "tencent": "1480001"},
        ),
        Template(
            "cart_coupon",
            "${name}, here is 10% off to finish your order: ${coupon_url} Reply STOP to opt out",
            Category.MARKETING,
            {"aliyun": "SMS_480002", "tencent": "1480002"},
        ),
        Template(
            "payment_success",
            "Payment received: order ${order_id}, total ${amount}. Thank you!",
            Category.TRANSACTIONAL,
            {"aliyun": "SMS_480003", "tencent": "1480003"},
        ),
        Template(
            "welcome_a",
            "Welcome to Nudge, ${name}! Start here: ${start_url} Reply STOP to opt out",
            Category.MARKETING,
            {"aliyun": "SMS_480004", "tencent": "1480004"},
        ),
        Template(
            "welcome_b",
            "${name}, glad you're here. Your first order ships free: ${start_url} Reply STOP to opt out",
            Category.MARKETING,
            {"aliyun": "SMS_480005", "tencent": "1480005"},
        ),
        Template(
            # The answer to a HELP or INFO reply: brand and contact, as carriers require. Edit its
            # wording in the registry; it is transactional, so it reaches opted-out numbers too.
            "help_reply",
            "Nudge Shop: questions about your orders or our texts? Write to support@example.com. "
            "Msg&data rates may apply. Reply STOP to opt out.",
            Category.TRANSACTIONAL,
            {"aliyun": "SMS_480007", "tencent": "1480007"},
        ),
        Template(
            "welcome_back",
            "Welcome back, ${name}! See what's new: ${start_url} Reply STOP to opt out",
            Category.MARKETING,
            {"aliyun": "SMS_480006", "tencent": "1480006"},
        ),
    )
}


BUILTIN_VARIANTS: tuple[Template, ...] = tuple(
    Template(code, body, category, codes, language="zh")
    for code, body, category, codes in (
        # Mainland promotional templates must end with 拒收请回复R (Aliyun's template rules,
        # Tencent's MarketingTemplateWithoutUnsubscribe); notifications must not carry it.
        (
            "cart_reminder",
            "${name}，您的购物车还在等您：${cart_url} 拒收请回复R",
            Category.MARKETING,
            {"aliyun": "SMS_480011", "tencent": "1480011"},
        ),
        (
            "cart_coupon",
            "${name}，送您一张九折券，完成下单：${coupon_url} 拒收请回复R",
            Category.MARKETING,
            {"aliyun": "SMS_480012", "tencent": "1480012"},
        ),
        (
            "welcome_a",
            "欢迎来到努济，${name}！从这里开始：${start_url} 拒收请回复R",
            Category.MARKETING,
            {"aliyun": "SMS_480014", "tencent": "1480014"},
        ),
        (
            "welcome_b",
            "${name}，很高兴见到您，首单包邮：${start_url} 拒收请回复R",
            Category.MARKETING,
            {"aliyun": "SMS_480015", "tencent": "1480015"},
        ),
        (
            "welcome_back",
            "欢迎回来，${name}！看看新品：${start_url} 拒收请回复R",
            Category.MARKETING,
            {"aliyun": "SMS_480016", "tencent": "1480016"},
        ),
        (
            "help_reply",
            "努济商城：订单或短信相关问题，请发邮件至 support@example.com。",
            Category.TRANSACTIONAL,
            {"aliyun": "SMS_480017", "tencent": "1480017"},
        ),
    )
)
"""Chinese variants of the built-in templates, for customers whose ``language`` is ``zh``."""


def builtin_templates() -> list[Template]:
    """Every built-in template variant: the defaults, then the language variants."""
    return [*BUILTIN_TEMPLATES.values(), *BUILTIN_VARIANTS]


def get_template(code: str) -> Template:
    try:
        return BUILTIN_TEMPLATES[code]
    except KeyError:
        raise TemplateError(f"unknown template {code!r}") from None
