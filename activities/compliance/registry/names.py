"""How registry entries are named: template codes, language tags and their fallback chain,
signature names, and how an entry is labelled in messages."""

from __future__ import annotations

import re

from nudge.errors import TemplateError
from nudge.templates import DEFAULT_LANGUAGE

_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_LANGUAGE = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z0-9]{2,8})*)?$")


def check_code(code: str) -> None:
    """Raise ``TemplateError`` unless ``code`` can name a template."""
    if not _CODE.match(code):
        raise TemplateError(f"template code {code!r} must be 1-100 letters, digits, '_', '.' or '-'")


def check_signature_name(name: str) -> None:
    """Raise ``TemplateError`` unless ``name`` can name a signature or sender."""
    if not name.strip() or len(name) > 100 or name != name.strip():
        raise TemplateError(f"signature {name!r} must be 1-100 characters without outer spaces")


def normalise_language(language: str | None) -> str:
    """The stored form of a language tag (lower case; ``""`` for the default variant)."""
    tag = (language or "").strip().lower()
    if not _LANGUAGE.match(tag):
        raise TemplateError(f"language {language!r} is not a language tag like 'zh' or 'en-us'")
    return tag


def language_chain(language: str | None) -> list[str]:
    """The variants to look for, most specific first: ``zh-cn``, ``zh``, then the default."""
    chain: list[str] = []
    tag = (language or "").strip().lower()
    while tag:
        chain.append(tag)
        tag = tag.rpartition("-")[0]
    chain.append(DEFAULT_LANGUAGE)
    return chain


def template_label(code: str, language: str) -> str:
    """``'welcome' (zh)`` in messages; the default variant is just ``'welcome'``."""
    return f"{code!r}" + (f" ({language})" if language else "")
