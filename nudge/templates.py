"""Message templates and rendering.

Templates use ``${var}`` placeholders, as Aliyun and Tencent templates do. This module holds the
built-in templates the example journeys use; a managed registry replaces it later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nudge.errors import TemplateError
from nudge.models import Category

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Template:
    code: str
    body: str
    category: Category

    @property
    def variables(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.body))

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
        ),
        Template(
            "cart_coupon",
            "${name}, here is 10% off to finish your order: ${coupon_url} Reply STOP to opt out",
            Category.MARKETING,
        ),
        Template(
            "payment_success",
            "Payment received: order ${order_id}, total ${amount}. Thank you!",
            Category.TRANSACTIONAL,
        ),
        Template(
            "welcome_a",
            "Welcome to Nudge, ${name}! Start here: ${start_url} Reply STOP to opt out",
            Category.MARKETING,
        ),
        Template(
            "welcome_b",
            "${name}, glad you're here. Your first order ships free: ${start_url} Reply STOP to opt out",
            Category.MARKETING,
        ),
        Template(
            "welcome_back",
            "Welcome back, ${name}! See what's new: ${start_url} Reply STOP to opt out",
            Category.MARKETING,
        ),
    )
}


def get_template(code: str) -> Template:
    try:
        return BUILTIN_TEMPLATES[code]
    except KeyError:
        raise TemplateError(f"unknown template {code!r}") from None
