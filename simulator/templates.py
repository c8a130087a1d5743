"""Templates the simulated consoles have approved, and mainland China's billing rule."""

from __future__ import annotations

import re

from nudge.models import Category
from nudge.templates import Template, builtin_templates
from simulator.config import SimConfig

_POSITIONAL = re.compile(r"\{(\d+)\}")


def approved_template(provider: str, code: str, config: SimConfig) -> Template | None:
    """The template ``code`` names in ``provider``'s console, built-in or configured."""
    for template in builtin_templates():
        if template.provider_codes.get(provider) == code:
            return template
    for extra in config.extra_templates:
        if getattr(extra, provider, None) == code:
            return Template(
                code=code,
                body=extra.body,
                category=Category.MARKETING,
                provider_codes={"aliyun": extra.aliyun or "", "tencent": extra.tencent or ""},
            )
    return None


def fill_positional(template: Template, params: list[str]) -> str:
    """Tencent's positional body with ``{1}``, ``{2}``... replaced by ``params``."""
    return _POSITIONAL.sub(lambda m: params[int(m.group(1)) - 1], template.positional_body)


def china_segments(text: str) -> int:
    """Billed parts in mainland China: every character counts 1; 70 fit in one, else 67 a part."""
    return 1 if len(text) <= 70 else -(-len(text) // 67)
