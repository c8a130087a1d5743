"""The template and signature registry on the real store, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.compliance.registry import Registry
from nudge.errors import ApprovalRefused, NotFound, TemplateError
from nudge.models import Category
from nudge.routes import RouteConfig
from nudge.store import create_engine, session_factory
from nudge.templates import BUILTIN_TEMPLATES, ApprovalStatus, builtin_templates

ROUTE = RouteConfig(name="ali", provider="simulator", signature="Nudge", signatures={"zh": "努济"})
SALE_EN = "${name}, spring sale: ${url} Reply STOP to opt out"
SALE_ZH = "${name}，春季特惠 ${url} 拒收请回复R"


def registry_on(engine: AsyncEngine, *, clock: Callable[[], float] = time.monotonic) -> Registry:
    return Registry(session_factory(engine), routes=[ROUTE], clock=clock)


async def test_seed_inserts_builtins_and_route_signatures_as_approved(engine: AsyncEngine) -> None:
    """A fresh store gets every built-in template and every route signature, approved."""
    registry = registry_on(engine)
    await registry.seed()
    templates = await registry.templates()
    assert {t.code for t in templates} == set(BUILTIN_TEMPLATES)
    assert {t.status for t in templates} == {ApprovalStatus.APPROVED}
    signatures = {s.name: s.status for s in await registry.signatures()}
    assert signatures == {"Nudge": ApprovalStatus.APPROVED, "努济": ApprovalStatus.APPROVED}


async def test_seed_never_overwrites_an_operators_edit(engine: AsyncEngine) -> None:
    """After an operator edits or rejects a seeded entry, seeding again (a restart) keeps it."""
    registry = registry_on(engine)
    await registry.put_template(
        "cart_reminder", body="${name}: ${cart_url} Reply STOP to quit", category=Category.MARKETING
    )
    await registry.reject_signature("努济", reason="expired")
    await registry_on(engine).seed()
    row = await registry.template("cart_reminder")
    assert (row.body, row.status, row.version) == ("${name}: ${cart_url} Reply STOP to quit", "draft", 2)
    assert (await registry.signature("努济")).status == ApprovalStatus.REJECTED


async def test_seed_from_two_processes_at_once_is_safe(db_url: str, engine: AsyncEngine) -> None:
    """The gateway and the worker seeding a fresh store together both succeed, and each entry
    exists once (the loser of the insert race reads the winner's rows)."""
    engines = [create_engine(db_url) for _ in range(4)]
    try:
        await asyncio.gather(*(registry_on(e).seed() for e in engines))
    finally:
        for other in engines:
            await other.dispose()
    registry = registry_on(engine)
    assert len(await registry.templates()) == len(builtin_templates())
    assert len(await registry.signatures()) == 2


async def test_template_review_goes_draft_pending_approved(engine: AsyncEngine) -> None:
    """A new template is a draft, then pending once submitted, then approved with its time; the
    variant the gate reads (``get``) carries each state. (That the gate sends only an approved one
    is tests/activities/test_send_registry.py.)"""
    registry = registry_on(engine)
    change = await registry.put_template("sale", body=SALE_EN, category=Category.MARKETING)
    assert (change.created, change.template.status) == (True, "draft")
    assert (await registry.get("sale")).status is ApprovalStatus.DRAFT
    assert (await registry.submit_template("sale")).status == "pending"
    assert (await registry.get("sale")).status is ApprovalStatus.PENDING
    approved = await registry.approve_template("sale")
    assert approved.status == "approved" and approved.approved_at is not None
    assert (await registry.get("sale")).status is ApprovalStatus.APPROVED


async def test_approve_refuses_marketing_without_opt_out_wording(engine: AsyncEngine) -> None:
    """Approval refuses a marketing template without its locale's opt-out wording (not a 409)."""
    registry = registry_on(engine)
    await registry.put_template("sale", language="zh", body="春季特惠 ${url}", category=Category.MARKETING)
    with pytest.raises(ApprovalRefused, match="拒收请回复R") as refused:
        await registry.approve_template("sale", "zh")
    assert refused.value.conflict is False
    assert (await registry.template("sale", "zh")).status == "draft"


async def test_forbidden_transition_is_a_conflict_with_a_hint(engine: AsyncEngine) -> None:
    """A rejected template cannot be approved or submitted until it is edited."""
    registry = registry_on(engine)
    await registry.put_template("sale", body=SALE_EN, category=Category.MARKETING)
    await registry.reject_template("sale", reason="Aliyun: wording")
    with pytest.raises(ApprovalRefused, match="it is rejected; put it again") as refused:
        await registry.approve_template("sale")
    assert (refused.value.conflict, refused.value.status) == (True, "rejected")
    await registry.put_template("sale", body=SALE_EN + "!", category=Category.MARKETING)
    assert (await registry.submit_template("sale")).status == "pending"


async def test_reject_needs_a_reason_and_records_it(engine: AsyncEngine) -> None:
    """Rejecting without a reason is refused; with one, the reason is stored."""
    registry = registry_on(engine)
    with pytest.raises(ApprovalRefused, match="needs a reason"):
        await registry.reject_template("cart_reminder", reason=" ")
    row = await registry.reject_template("cart_reminder", reason="withdrawn by Aliyun")
    assert (row.status, row.reason, row.approved_at) == ("rejected", "withdrawn by Aliyun", None)


async def test_editing_an_approved_template_makes_it_a_draft_and_says_so(engine: AsyncEngine) -> None:
    """A changed body goes back to draft (review_reset names the old state); the same body again
    changes nothing."""
    registry = registry_on(engine)
    same = await registry.put_template(
        "payment_success",
        body=BUILTIN_TEMPLATES["payment_success"].body,
        category=Category.TRANSACTIONAL,
        provider_codes=BUILTIN_TEMPLATES["payment_success"].provider_codes,
    )
    assert (same.changed, same.template.status) == (False, "approved")
    edit = await registry.put_template(
        "payment_success", body="Paid: ${order_id}, ${amount}.", category=Category.TRANSACTIONAL
    )
    assert (edit.changed, edit.review_reset, edit.template.status) == (True, ApprovalStatus.APPROVED, "draft")
    assert edit.template.version == 2 and edit.template.approved_at is None


async def test_put_refuses_bad_placeholders_and_language(engine: AsyncEngine) -> None:
    """Malformed placeholders and language tags are refused before anything is stored."""
    registry = registry_on(engine)
    with pytest.raises(TemplateError, match="unknown placeholder syntax"):
        await registry.put_template("x", body="Hi ${1}", category=Category.MARKETING)
    with pytest.raises(TemplateError, match="not a language tag"):
        await registry.put_template("x", language="zh_CN!", body="Hi", category=Category.MARKETING)
    with pytest.raises(NotFound):
        await registry.template("x")


async def test_get_prefers_the_approved_variant_in_the_customers_language(engine: AsyncEngine) -> None:
    """zh-CN falls back to zh, then the default; a draft zh variant is not live until approved."""
    registry = registry_on(engine)
    await registry.put_template("sale", body=SALE_EN, category=Category.MARKETING)
    await registry.approve_template("sale")
    await registry.put_template("sale", language="zh", body=SALE_ZH, category=Category.MARKETING)
    assert (await registry.get("sale", "zh-CN")).language == ""
    await registry.approve_template("sale", "zh")
    chosen = await registry.get("sale", "zh-CN")
    assert (chosen.language, chosen.body) == ("zh", SALE_ZH)
    assert (await registry.get("sale", "en")).body == SALE_EN
    with pytest.raises(TemplateError, match="unknown template 'nope'"):
        await registry.get("nope", "zh")


async def test_get_returns_the_unapproved_variant_when_none_is_approved(engine: AsyncEngine) -> None:
    """With no approved variant in the chain, the most specific one comes back, with its state."""
    registry = registry_on(engine)
    await registry.put_template("sale", language="zh", body=SALE_ZH, category=Category.MARKETING)
    await registry.submit_template("sale", "zh")
    assert (await registry.get("sale", "zh")).status is ApprovalStatus.PENDING
    with pytest.raises(TemplateError, match="no default variant"):
        await registry.get("sale", "en")


async def test_reads_come_from_a_snapshot_for_the_ttl(engine: AsyncEngine) -> None:
    """A change made by another process (the gateway) reaches this one only after the TTL."""
    now = [100.0]
    worker = registry_on(engine, clock=lambda: now[0])
    gateway = registry_on(engine)
    assert await worker.signature_approved("Nudge")
    await gateway.reject_signature("Nudge", reason="expired")
    now[0] += 1.9
    assert await worker.signature_approved("Nudge")
    now[0] += 0.2
    assert not await worker.signature_approved("Nudge")


async def test_signature_review_and_reapplication(engine: AsyncEngine) -> None:
    """A new signature is a draft; approved, it counts; rejected, a put makes it a draft again."""
    registry = registry_on(engine)
    row, created = await registry.put_signature("努济商城")
    assert (created, row.status) == (True, "draft")
    assert not await registry.signature_approved("努济商城")
    await registry.approve_signature("努济商城")
    assert await registry.signature_approved("努济商城")
    await registry.reject_signature("努济商城", reason="qualification expired")
    assert not await registry.signature_approved("努济商城")
    again, created = await registry.put_signature("努济商城")
    assert (created, again.status, again.reason) == (False, "draft", None)
    with pytest.raises(NotFound):
        await registry.approve_signature("unknown")


async def test_review_on_a_fresh_store_seeds_first(engine: AsyncEngine) -> None:
    """A review step as the first call of a process finds the seeded signature (a CLI's reject of
    a route signature right after the gateway started)."""
    row = await registry_on(engine).reject_signature("Nudge", reason="expired")
    assert (row.status, row.reason) == ("rejected", "expired")
