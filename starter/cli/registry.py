"""``nudge templates ...`` and ``nudge signatures ...``: the registry, through the gateway's API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from starter.cli.common import GatewayOpt, call_gateway, console, fail

templates_app = typer.Typer(
    help="Message templates, their language variants and their review "
    "(draft -> pending -> approved or rejected). Only approved templates are sent.",
    no_args_is_help=True,
)
signatures_app = typer.Typer(
    help="Signatures (Aliyun/Tencent SignName) and senders, and their review. "
    "A route whose signature is not approved carries no messages.",
    no_args_is_help=True,
)

LanguageOpt = Annotated[
    str,
    typer.Option("--language", "-l", help="The variant's language, e.g. zh (default: the default variant)."),
]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why, as the provider or reviewer said.")]


def _call(method: str, path: str, gateway_url: str | None, **kwargs: Any) -> Any:
    return call_gateway(method, path, gateway_url, **kwargs)


def _params(language: str) -> dict[str, str]:
    return {"language": language} if language else {}


def _variant(template: dict[str, Any]) -> str:
    return f"{template['code']}" + (f" ({template['language']})" if template["language"] else "")


def _status_line(kind: str, name: str, entry: dict[str, Any]) -> None:
    reason = f": {entry['reason']}" if entry.get("reason") else ""
    console.print(f"{kind} {name} is [bold]{entry['status']}[/]{reason}")


# ----- templates --------------------------------------------------------------------------------


@templates_app.command("list")
def list_templates(
    code: Annotated[str | None, typer.Option(help="Only this template's variants.")] = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """List every template variant with its category and review state.

    Example: [bold]nudge templates list --code cart_reminder[/]
    """
    rows = _call("GET", "/v1/templates", gateway_url, params={"code": code} if code else {})
    table = Table("code", "language", "category", "status", "version", "signature", "body")
    for row in rows:
        table.add_row(
            row["code"],
            row["language"] or "default",
            row["category"],
            row["status"],
            str(row["version"]),
            row["signature"] or "",
            row["body"] if len(row["body"]) <= 60 else row["body"][:57] + "...",
        )
    console.print(table if rows else "no templates")


@templates_app.command("show")
def show_template(
    code: Annotated[str, typer.Argument(help="Template code.")],
    language: LanguageOpt = "",
    gateway_url: GatewayOpt = None,
) -> None:
    """Show one variant in full: body, variables, provider codes and review state.

    Example: [bold]nudge templates show cart_reminder -l zh[/]
    """
    row = _call("GET", f"/v1/templates/{quote(code, safe='')}", gateway_url, params=_params(language))
    table = Table(show_header=False, box=None)
    for label, value in (
        ("code", row["code"]),
        ("language", row["language"] or "default"),
        ("category", row["category"]),
        ("status", row["status"] + (f" ({row['reason']})" if row["reason"] else "")),
        ("version", str(row["version"])),
        ("signature", row["signature"] or "the route's"),
        ("provider codes", ", ".join(f"{k}: {v}" for k, v in row["provider_codes"].items()) or "-"),
        ("variables", ", ".join(row["variables"]) or "-"),
        ("approved at", row["approved_at"] or "-"),
        ("body", row["body"]),
    ):
        table.add_row(f"[bold]{label}[/]", value)
    console.print(table)


@templates_app.command("put")
def put_template(
    code: Annotated[str, typer.Argument(help="Template code, e.g. spring_sale.")],
    category: Annotated[str, typer.Option(help="marketing or transactional.")],
    body: Annotated[str | None, typer.Option(help="The text, with ${name} placeholders.")] = None,
    body_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, readable=True, help="Read the text from this file."),
    ] = None,
    language: LanguageOpt = "",
    provider_code: Annotated[
        list[str],
        typer.Option(
            "--provider-code", "-c", help="provider=code from that console, e.g. aliyun=SMS_1; repeatable."
        ),
    ] = [],  # noqa: B006 - typer reads the default
    signature: Annotated[
        str | None, typer.Option(help="Sign with this instead of the route's signature.")
    ] = None,
    gateway_url: GatewayOpt = None,
) -> None:
    """Create a template variant as a draft, or edit one.

    Editing an approved variant makes it a draft again: it is not sent until it is approved again.

    Example: [bold]nudge templates put spring_sale --category marketing -l zh -c aliyun=SMS_9
    --body '${name}，春季特惠 ${url} 拒收请回复R'[/]
    """
    if (body is None) == (body_file is None):
        raise fail("give the text with exactly one of --body and --body-file", code=2)
    text = body_file.read_text(encoding="utf-8").strip() if body_file is not None else body
    codes: dict[str, str] = {}
    for item in provider_code:
        provider, sep, value = item.partition("=")
        if not sep or not provider or not value:
            raise fail(f"--provider-code takes provider=code, e.g. aliyun=SMS_1; got {item!r}", code=2)
        codes[provider] = value
    payload = {"body": text, "category": category, "provider_codes": codes, "signature": signature}
    result = _call(
        "PUT", f"/v1/templates/{quote(code, safe='')}", gateway_url, json=payload, params=_params(language)
    )
    template = result["template"]
    if result["created"]:
        console.print(f"template {_variant(template)} created as a draft; submit or approve it to send it")
    elif result["changed"]:
        console.print(f"template {_variant(template)} changed (version {template['version']})")
    else:
        console.print(f"template {_variant(template)} unchanged")
    if result.get("notice"):
        console.print(f"[yellow]note:[/] {result['notice']}")


def _review_template(code: str, action: str, language: str, gateway_url: str | None, **kwargs: Any) -> None:
    path = f"/v1/templates/{quote(code, safe='')}:{action}"
    row = _call("POST", path, gateway_url, params=_params(language), **kwargs)
    _status_line("template", _variant(row), row)


@templates_app.command("submit")
def submit_template(
    code: Annotated[str, typer.Argument(help="Template code.")],
    language: LanguageOpt = "",
    gateway_url: GatewayOpt = None,
) -> None:
    """Submit a draft for review (draft -> pending); refused when the opt-out wording is missing.

    Example: [bold]nudge templates submit spring_sale -l zh[/]
    """
    _review_template(code, "submit", language, gateway_url)


@templates_app.command("approve")
def approve_template(
    code: Annotated[str, typer.Argument(help="Template code.")],
    language: LanguageOpt = "",
    gateway_url: GatewayOpt = None,
) -> None:
    """Approve a draft or pending variant; from then on it is sent.

    A marketing template must carry its locale's opt-out wording: 拒收请回复R at the end in
    Chinese, "Reply STOP to opt out" elsewhere.

    Example: [bold]nudge templates approve spring_sale -l zh[/]
    """
    _review_template(code, "approve", language, gateway_url)


@templates_app.command("reject")
def reject_template(
    code: Annotated[str, typer.Argument(help="Template code.")],
    reason: ReasonOpt,
    language: LanguageOpt = "",
    gateway_url: GatewayOpt = None,
) -> None:
    """Reject a variant, or withdraw an approved one; it is no longer sent.

    Example: [bold]nudge templates reject spring_sale -l zh -r "Aliyun: 变量内容不合规"[/]
    """
    _review_template(code, "reject", language, gateway_url, json={"reason": reason})


# ----- signatures -------------------------------------------------------------------------------


@signatures_app.command("list")
def list_signatures(gateway_url: GatewayOpt = None) -> None:
    """List every signature and sender with its review state.

    Example: [bold]nudge signatures list[/]
    """
    rows = _call("GET", "/v1/signatures", gateway_url)
    table = Table("name", "status", "reason", "approved at")
    for row in rows:
        table.add_row(row["name"], row["status"], row["reason"] or "", row["approved_at"] or "")
    console.print(table if rows else "no signatures")


@signatures_app.command("put")
def put_signature(
    name: Annotated[str, typer.Argument(help="SignName, or a sender number.")],
    gateway_url: GatewayOpt = None,
) -> None:
    """Add a signature as a draft (a rejected one becomes a draft again).

    Example: [bold]nudge signatures put 努济商城[/]
    """
    result = _call("PUT", f"/v1/signatures/{quote(name, safe='')}", gateway_url)
    state = "created as a draft" if result["created"] else f"is {result['signature']['status']}"
    console.print(f"signature {name!r} {state}")


def _review_signature(name: str, action: str, gateway_url: str | None, **kwargs: Any) -> None:
    row = _call("POST", f"/v1/signatures/{quote(name, safe='')}:{action}", gateway_url, **kwargs)
    _status_line("signature", repr(name), row)


@signatures_app.command("submit")
def submit_signature(
    name: Annotated[str, typer.Argument(help="Signature name.")], gateway_url: GatewayOpt = None
) -> None:
    """Submit a draft signature for review (draft -> pending)."""
    _review_signature(name, "submit", gateway_url)


@signatures_app.command("approve")
def approve_signature(
    name: Annotated[str, typer.Argument(help="Signature name.")], gateway_url: GatewayOpt = None
) -> None:
    """Approve a signature: routes that sign with it carry messages.

    Example: [bold]nudge signatures approve 努济商城[/]
    """
    _review_signature(name, "approve", gateway_url)


@signatures_app.command("reject")
def reject_signature(
    name: Annotated[str, typer.Argument(help="Signature name.")],
    reason: ReasonOpt,
    gateway_url: GatewayOpt = None,
) -> None:
    """Reject a signature, or withdraw an approved one.

    Routes that sign with it are skipped; a message with no other route is blocked.

    Example: [bold]nudge signatures reject Nudge -r "qualification expired"[/]
    """
    _review_signature(name, "reject", gateway_url, json={"reason": reason})
