from __future__ import annotations

import pytest

from nudge.errors import TemplateError
from nudge.models import Category
from nudge.templates import BUILTIN_TEMPLATES, get_template


def test_template_render_fills_every_placeholder() -> None:
    """Rendering replaces each ${var} with its value, numbers included."""
    body = get_template("payment_success").render({"order_id": "o-1", "amount": 42.5})
    assert body == "Payment received: order o-1, total 42.5. Thank you!"


def test_template_render_ignores_extra_params() -> None:
    """Parameters the template does not use are allowed and ignored."""
    body = get_template("cart_reminder").render(
        {"name": "Ada", "cart_url": "https://s.example/c", "unused": [1]}
    )
    assert body.startswith("Ada, your cart is waiting: https://s.example/c ")


def test_template_render_missing_variable_raises() -> None:
    """A missing variable is a TemplateError that names it."""
    with pytest.raises(TemplateError, match="cart_url"):
        get_template("cart_reminder").render({"name": "Ada"})


@pytest.mark.parametrize("value", [["a"], {"k": "v"}, None, True])
def test_template_render_non_scalar_variable_raises(value: object) -> None:
    """Lists, dicts, None and booleans are refused rather than rendered as their repr."""
    with pytest.raises(TemplateError, match="must be a string or number"):
        get_template("cart_reminder").render({"name": value, "cart_url": "https://s.example/c"})


def test_get_template_unknown_code_raises() -> None:
    """An unknown template code is a TemplateError."""
    with pytest.raises(TemplateError, match="unknown template 'nope'"):
        get_template("nope")


def test_builtin_templates_marketing_ones_offer_opt_out() -> None:
    """Every marketing template tells the customer how to opt out; transactional ones need not."""
    for template in BUILTIN_TEMPLATES.values():
        if template.category is Category.MARKETING:
            assert "Reply STOP to opt out" in template.body, template.code
