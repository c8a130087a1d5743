"""The complaint-rate breaker on the real store (SQLite, and PostgreSQL when it answers):
attribution, the threshold, the minimum volume, the window, duplicates, and pauses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from nudge.complaints import ComplaintKind, ComplaintPolicy, ComplaintRecorder
from nudge.pauses import (
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
