"""The complaint-rate breaker on the real store (SQLite, and PostgreSQL when it answers):
attribution, the threshold, the minimum volume, the window, duplicates, and pauses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import Session, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.compliance.alerts import AlertWebhook
from activities.compliance.complaints import ComplaintKind, ComplaintPolicy, ComplaintRecorder
from activities.compliance.pauses import (
    AlreadyPaused,
    NotPaused,
    PauseCache,
    Scope,
    Source,
    current_pauses,
    pause,
    pause_history,
    resume,
)
from nudge.store import Complaint, Customer, Message, Pause, PauseEvent, session_factory

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
"""The breaker's clock in every test here, fixed: a clock read at import would drift away from
the wall clock that a resume writes, and the window would be wrong once the run is minutes old."""
POLICY = ComplaintPolicy(
    window=timedelta(hours=24), attribution=timedelta(hours=72), threshold=0.2, min_volume=10
)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def recorder(sessions: async_sessionmaker[AsyncSession]) -> ComplaintRecorder:
    return ComplaintRecorder(sessions, policy=POLICY, clock=lambda: NOW)


async def add_messages(
    sessions: async_sessionmaker[AsyncSession],
    count: int,
    *,
    ago: timedelta = timedelta(hours=1),
    **fields: Any,
) -> list[Message]:
    """``count`` marketing messages on aliyun-cn, handed to the provider ``ago`` before NOW, each to
    a customer of its own (with the phone number that opt-outs are attributed by)."""
    messages = []
    async with sessions() as session:
        for _ in range(count):
            tag = uuid.uuid4().hex[:10]
            phone = f"+86138{uuid.uuid4().int % 10**8:08d}"
            values: dict[str, Any] = {
                "idempotency_key": tag,
                "workflow_id": f"journey:cart_abandonment:{tag}:k1",
                "journey": "cart_abandonment",
                "step": "send:cart_reminder",
                "customer_id": tag,
                "template": "cart_reminder",
                "category": "marketing",
                "to": phone,
                "status": "delivered",
                "provider": "aliyun",
                "route": "aliyun-cn",
                "signature": "Nudge",
                "created_at": NOW - ago,
            }
            message = Message(**(values | fields))
            session.add(Customer(id=message.customer_id, phone=message.to))
            session.add(message)
            messages.append(message)
        await session.commit()
    return messages


async def complain(recorder: ComplaintRecorder, messages: list[Message]) -> list[Pause]:
    """A STOP from each message's number; the pauses opened along the way."""
    opened = []
    for message in messages:
        opened += await recorder.opt_out(message.to or "", reply_id=f"aliyun:{uuid.uuid4().hex}")
    return opened


async def complaints(sessions: async_sessionmaker[AsyncSession]) -> list[Complaint]:
    async with sessions() as session:
        return list((await session.exec(select(Complaint))).all())


async def test_opt_out_counts_against_the_latest_marketing_message(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A STOP counts against the newest marketing message to that number, not an older one nor a
    newer transactional one."""
    [older] = await add_messages(sessions, 1, ago=timedelta(hours=30))
    async with sessions() as session:
        newer = Message(
            **(older.model_dump(exclude={"id", "idempotency_key", "created_at", "template"}))
            | {"idempotency_key": "newer", "template": "cart_coupon", "created_at": NOW - timedelta(hours=2)}
        )
        receipt = Message(
            **(older.model_dump(exclude={"id", "idempotency_key", "created_at", "template", "category"}))
            | {
                "idempotency_key": "receipt",
                "template": "payment_success",
                "category": "transactional",
                "created_at": NOW - timedelta(minutes=5),
            }
        )
        session.add_all([newer, receipt])
        await session.commit()

    await recorder.opt_out(older.to or "", reply_id="aliyun:1")

    [complaint] = await complaints(sessions)
    assert (complaint.message_id, complaint.kind, complaint.template, complaint.code) == (
        newer.id,
        "opt_out",
        "cart_coupon",
        "aliyun:1",
    )


async def test_opt_out_after_the_attribution_time_counts_nothing(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A STOP 73 h after the last marketing message (attribution: 72 h) is a complaint of nothing."""
    [message] = await add_messages(sessions, 1, ago=timedelta(hours=73))
    assert await complain(recorder, [message]) == []
    assert await complaints(sessions) == []


async def test_duplicate_complaint_counts_once(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A redelivered STOP, or a second one, adds no second opt-out complaint for the same message;
    a provider code for it is a complaint of another kind."""
    [message] = await add_messages(sessions, 1)
    await complain(recorder, [message, message])
    await recorder.record(message, ComplaintKind.PROVIDER_CODE, "30007")
    await recorder.record(message, ComplaintKind.PROVIDER_CODE, "30007")
    assert sorted(c.kind for c in await complaints(sessions)) == ["opt_out", "provider_code"]


async def test_breaker_opens_only_above_the_threshold(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """10 sent: 2 complaints (20%, the threshold) pause nothing; the 3rd (30%) pauses every scope
    of the message, with the figures."""
    messages = await add_messages(sessions, 10)
    assert await complain(recorder, messages[:2]) == []

    opened = await complain(recorder, messages[2:3])

    assert sorted((p.scope, p.value) for p in opened) == [
        ("journey", "cart_abandonment"),
        ("route", "aliyun-cn"),
        ("signature", "Nudge"),
        ("template", "cart_reminder"),
    ]
    for paused in await current_pauses(sessions):
        assert (paused.source, paused.complaints, paused.sent, paused.rate) == ("auto", 3, 10, 0.3)
        assert paused.created_by == "complaint-breaker"
        assert "30.0%" in paused.reason


async def test_breaker_waits_for_the_minimum_volume(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """9 sent (minimum 10), every one complained about: no pause."""
    assert await complain(recorder, await add_messages(sessions, 9)) == []
    assert await current_pauses(sessions) == []


async def test_breaker_counts_only_sends_and_complaints_inside_the_window(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """Messages sent 25 h ago are outside the 24 h window: 9 recent ones are under the minimum
    volume however many old ones there are; a 10th recent one opens the breaker, on the recent
    messages' complaints only (a late STOP about an old message does not count against them)."""
    old = await add_messages(sessions, 20, ago=timedelta(hours=25))
    recent = await add_messages(sessions, 9, ago=timedelta(hours=23, minutes=59))
    assert await complain(recorder, old[:5] + recent[:3]) == []

    await add_messages(sessions, 1)
    opened = await complain(recorder, recent[3:4])

    template = next(p for p in opened if p.scope == "template")
    assert (template.complaints, template.sent) == (4, 10)


async def test_breaker_does_not_pause_a_paused_scope_again(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """Complaints after the breaker opened add no second pause and no second audit entry."""
    messages = await add_messages(sessions, 10)
    await complain(recorder, messages[:3])
    assert await complain(recorder, messages[3:6]) == []
    async with sessions() as session:
        events = (await session.exec(select(PauseEvent).where(PauseEvent.scope == "template"))).all()
    assert [e.action for e in events] == ["paused"]


async def test_resume_restarts_the_breakers_window(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """After a resume, the complaints and sends that opened the breaker no longer count: one more
    complaint does not pause the template again, but enough over enough new sends do."""
    messages = await add_messages(sessions, 10)
    await complain(recorder, messages[:3])
    await resume(
        sessions,
        scope=Scope.TEMPLATE,
        value="cart_reminder",
        reason="copy fixed",
        by="ops",
        clock=lambda: NOW + timedelta(minutes=1),
    )
    later = ComplaintRecorder(sessions, policy=POLICY, clock=lambda: NOW + timedelta(minutes=10))

    assert [p.scope for p in await complain(later, messages[3:4])] == []

    fresh = await add_messages(sessions, 10, ago=timedelta(minutes=-5))
    opened = await complain(later, fresh[:3])
    # Only complaints about messages sent since the resume count: 3 of the 10 new ones, over 20%.
    assert [(p.scope, p.complaints, p.sent) for p in opened] == [("template", 3, 10)]


async def test_transactional_complaint_is_not_counted(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A provider's opt-out code on a transactional message counts nothing: pauses hold marketing only."""
    [message] = await add_messages(sessions, 1, category="transactional", template="payment_success")
    await recorder.record(message, ComplaintKind.PROVIDER_CODE, "21610")
    assert await complaints(sessions) == []


async def test_pause_twice_is_refused_and_resume_of_nothing_too(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A second pause of a paused scope raises AlreadyPaused with the pause in effect; resuming a
    scope that is not paused raises NotPaused; the audit keeps who and why, newest first."""
    await pause(
        sessions, scope=Scope.ROUTE, value="aliyun-cn", reason="carrier asked", source=Source.MANUAL, by="ana"
    )
    with pytest.raises(AlreadyPaused) as again:
        await pause(
            sessions, scope=Scope.ROUTE, value="aliyun-cn", reason="again", source=Source.MANUAL, by="bo"
        )
    assert (again.value.pause.reason, again.value.pause.created_by) == ("carrier asked", "ana")
    await resume(sessions, scope=Scope.ROUTE, value="aliyun-cn", reason="carrier ok", by="bo")
    with pytest.raises(NotPaused):
        await resume(sessions, scope=Scope.ROUTE, value="aliyun-cn", reason=None, by="bo")
    history = await pause_history(sessions)
    assert [(e.action, e.by, e.reason) for e in history] == [
        ("resumed", "bo", "carrier ok"),
        ("paused", "ana", "carrier asked"),
    ]


async def test_pause_cache_reads_at_most_once_per_ttl(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The gate's cache sees a new pause only once its TTL has passed, and a resume likewise."""
    now = [0.0]
    cache = PauseCache(sessions, ttl=1.0, clock=lambda: now[0])
    assert await cache.find((Scope.TEMPLATE, "cart_reminder")) is None
    await pause(
        sessions, scope=Scope.TEMPLATE, value="cart_reminder", reason="r", source=Source.MANUAL, by="t"
    )
    now[0] = 0.9
    assert await cache.find((Scope.TEMPLATE, "cart_reminder")) is None
    now[0] = 1.0
    found = await cache.find((Scope.JOURNEY, None), (Scope.TEMPLATE, "cart_reminder"))
    assert found is not None and (found.scope, found.value) == ("template", "cart_reminder")
    await resume(sessions, scope=Scope.TEMPLATE, value="cart_reminder", reason=None, by="t")
    now[0] = 2.1
    assert await cache.find((Scope.TEMPLATE, "cart_reminder")) is None


async def test_complaint_row_copies_the_message_scopes_at_the_breakers_clock(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A complaint keeps its message's template, signature, journey and route, and the breaker's time."""
    [message] = await add_messages(sessions, 1, signature="ShopCN", route="tencent-cn")
    await recorder.opt_out(message.to or "", reply_id="aliyun:7")
    [complaint] = await complaints(sessions)
    assert (
        complaint.message_id,
        complaint.kind,
        complaint.code,
        complaint.template,
        complaint.signature,
        complaint.journey,
        complaint.route,
        complaint.at,
    ) == (message.id, "opt_out", "aliyun:7", "cart_reminder", "ShopCN", "cart_abandonment", "tencent-cn", NOW)


async def test_provider_code_counts_against_the_message_it_names(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A provider's code for a message id is a provider_code complaint with that code, and opens
    the breaker like any other; a code for an unknown id counts nothing."""
    messages = await add_messages(sessions, 10)
    assert await recorder.provider_code("no-such-message", "21610") == []
    assert await complaints(sessions) == []

    assert await complain(recorder, messages[:2]) == []
    opened = await recorder.provider_code(messages[2].id, "21610")

    assert sorted(p.scope for p in opened) == ["journey", "route", "signature", "template"]
    coded = [(c.message_id, c.kind, c.code) for c in await complaints(sessions) if c.kind == "provider_code"]
    assert coded == [(messages[2].id, "provider_code", "21610")]


async def test_breaker_reason_and_alert_state_the_figures_and_the_policy(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """3 complaints of 10 sent over 24 h, threshold 20%: the pause's reason and the alert posted
    for it say so, field by field."""
    posted: list[dict[str, Any]] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as client:
        alerts = AlertWebhook("https://hooks.example.com/nudge", client=client)
        recorder = ComplaintRecorder(sessions, policy=POLICY, alerts=alerts, clock=lambda: NOW)
        messages = await add_messages(sessions, 10)
        await complain(recorder, messages[:3])
        await alerts.aclose()  # lets the alerts in flight reach the webhook

    reason = "complaint rate 30.0% over 24 h (3 complaints / 10 sent) is above 20.0%"
    stored = {p.scope: p for p in await current_pauses(sessions)}
    assert {p.scope: p.reason for p in stored.values()} == dict.fromkeys(
        ["template", "signature", "journey", "route"], reason
    )
    template = next(a for a in posted if a["scope"] == "template")
    paused_at = template.pop("paused_at")
    assert template == {
        "alert": "sends_paused",
        "scope": "template",
        "value": "cart_reminder",
        "source": "auto",
        "reason": reason,
        "complaints": 3,
        "sent": 10,
        "rate": 0.3,
        "threshold": 0.2,
        "window_s": 86400.0,
        "min_volume": 10,
        "resume": "nudge resume --template cart_reminder",
    }
    assert datetime.fromisoformat(paused_at) == stored["template"].created_at
    assert sorted(a["scope"] for a in posted) == ["journey", "route", "signature", "template"]


async def test_breaker_counts_a_message_complained_about_twice_once(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """10 sent; one message drew a STOP and a provider code, another a STOP: 2 messages complained
    about (20%, the threshold), not 3 complaints (30%), so nothing pauses."""
    messages = await add_messages(sessions, 10)
    assert await complain(recorder, messages[:1]) == []
    assert await recorder.provider_code(messages[0].id, "30007") == []
    assert await complain(recorder, messages[1:2]) == []
    assert len(await complaints(sessions)) == 3
    assert await current_pauses(sessions) == []


async def test_breaker_window_includes_a_send_at_its_exact_start(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A message sent exactly 24 h before the complaint is inside the 24 h window: with it, 10 are
    sent (the minimum volume), and 3 complaints open the breaker."""
    await add_messages(sessions, 1, ago=timedelta(hours=24))
    recent = await add_messages(sessions, 9)
    opened = await complain(recorder, recent[:3])
    template = next(p for p in opened if p.scope == "template")
    assert (template.complaints, template.sent) == (3, 10)


async def test_breaker_opens_a_later_scope_when_an_earlier_one_has_too_few_sends(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """10 sends of 10 different templates on one journey, signature and route: 3 complaints pause
    the journey, signature and route, though no template has the minimum volume."""
    messages = [
        message for n in range(10) for message in await add_messages(sessions, 1, template=f"offer_{n}")
    ]
    opened = await complain(recorder, messages[:3])
    assert sorted((p.scope, p.value) for p in opened) == [
        ("journey", "cart_abandonment"),
        ("route", "aliyun-cn"),
        ("signature", "Nudge"),
    ]


async def test_breaker_passes_over_a_paused_scope_and_opens_the_others(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """With the template paused by hand, 3 complaints of 10 pause the signature, journey and route,
    and leave the manual pause as it was."""
    await pause(
        sessions,
        scope=Scope.TEMPLATE,
        value="cart_reminder",
        reason="copy review",
        source=Source.MANUAL,
        by="ana",
    )
    opened = await complain(recorder, (await add_messages(sessions, 10))[:3])
    assert sorted(p.scope for p in opened) == ["journey", "route", "signature"]
    async with sessions() as session:
        template = await session.get(Pause, ("template", "cart_reminder"))
    assert template is not None and (template.source, template.reason) == ("manual", "copy review")


async def test_breaker_opens_the_other_scopes_when_another_process_paused_one_meanwhile(
    sessions: async_sessionmaker[AsyncSession], db_url: str
) -> None:
    """When the other process (gateway or worker) pauses the template between this breaker's check
    and its own pause, the breaker still pauses the signature, journey and route."""
    quiet = ComplaintPolicy(window=POLICY.window, threshold=POLICY.threshold, min_volume=11)
    messages = await add_messages(sessions, 10)
    await complain(ComplaintRecorder(sessions, policy=quiet, clock=lambda: NOW), messages[:3])
    # A connection of its own, as the other process has: the breaker's first clock read comes
    # right after it found the template unpaused.
    url = make_url(db_url)
    other_process = create_engine(
        url.set(drivername="sqlite" if url.drivername.startswith("sqlite") else url.drivername)
    )
    raced: list[bool] = []

    def clock() -> datetime:
        if not raced:
            raced.append(True)
            with Session(other_process) as session:
                session.add(
                    Pause(
                        scope="template",
                        value="cart_reminder",
                        reason="other process",
                        source="auto",
                        created_by="gw",
                    )
                )
                session.commit()
        return NOW

    try:
        opened = await ComplaintRecorder(sessions, policy=POLICY, clock=clock).evaluate(messages[0])
    finally:
        other_process.dispose()

    assert raced == [True]
    assert sorted(p.scope for p in opened) == ["journey", "route", "signature"]
    assert sorted(p.scope for p in await current_pauses(sessions)) == [
        "journey",
        "route",
        "signature",
        "template",
    ]


async def test_opt_out_at_the_end_of_the_attribution_time_still_counts(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """A STOP exactly 72 h after the last marketing message (attribution: 72 h) counts against it."""
    [message] = await add_messages(sessions, 1, ago=timedelta(hours=72))
    await complain(recorder, [message])
    assert [c.message_id for c in await complaints(sessions)] == [message.id]


# A newer marketing message to the same number that a provider never took or refused:
# (its status, its provider). The STOP counts against the older delivered one instead.
NOT_HANDED_OVER = [
    ("failed", None),
    ("blocked", "aliyun"),
    ("pending", "aliyun"),
]


@pytest.mark.parametrize(
    ("status", "provider"),
    NOT_HANDED_OVER,
    ids=["failed-without-provider", "blocked-with-provider", "pending-with-provider"],
)
async def test_opt_out_skips_a_newer_message_no_provider_took(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder, status: str, provider: str | None
) -> None:
    """A STOP counts against the latest message handed to a provider, not a newer one that failed
    before any provider had it, was blocked, or is still pending."""
    [older] = await add_messages(sessions, 1, ago=timedelta(hours=30))
    async with sessions() as session:
        session.add(
            Message(
                **older.model_dump(exclude={"id", "idempotency_key", "created_at", "status", "provider"}),
                idempotency_key="newer",
                created_at=NOW - timedelta(hours=2),
                status=status,
                provider=provider,
            )
        )
        await session.commit()
    await complain(recorder, [older])
    assert [c.message_id for c in await complaints(sessions)] == [older.id]


async def test_opt_out_counts_against_a_message_to_that_number_of_the_customer_who_has_it(
    sessions: async_sessionmaker[AsyncSession], recorder: ComplaintRecorder
) -> None:
    """After a customer moves from one number to another, a STOP from the old number (no customer
    has it) or from the new one (no message went to it) counts nothing; once a message goes to the
    new number, a STOP from it counts against that message."""
    [to_old] = await add_messages(sessions, 1, ago=timedelta(hours=3))
    old_number, new_number = to_old.to or "", "+8613900000001"
    async with sessions() as session:
        customer = await session.get(Customer, to_old.customer_id)
        assert customer is not None
        customer.phone = new_number
        session.add(customer)
        await session.commit()

    assert await recorder.opt_out(old_number, reply_id="aliyun:old") == []
    assert await recorder.opt_out(new_number, reply_id="aliyun:new") == []
    assert await complaints(sessions) == []

    async with sessions() as session:
        to_new = Message(
            **to_old.model_dump(exclude={"id", "idempotency_key", "created_at", "to"}),
            idempotency_key="to-new",
            created_at=NOW - timedelta(hours=1),
            to=new_number,
        )
        session.add(to_new)
        await session.commit()
    await recorder.opt_out(new_number, reply_id="aliyun:new-again")
    assert [(c.message_id, c.code) for c in await complaints(sessions)] == [(to_new.id, "aliyun:new-again")]
