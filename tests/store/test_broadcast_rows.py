"""A broadcast batch's new rows, stored in one plain insert: a retried batch whose rows an earlier
attempt stored in part keeps those (reported ``lost``, to be read again) and stores the rest with
their links, one row per (broadcast, customer) and no link twice. And the batch's updates of many
rows at once: each row gets its own values."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from activities.broadcast.rows import BatchRows
from activities.broadcast.table import GROUPED_UPDATES, PENDING, TABLE, update_each
from nudge.broadcasts import broadcast_idempotency_key
from nudge.store import Link, Message, session_factory


def composed(customer_id: str) -> tuple[Message, list[Link]]:
    """A row as an attempt composes it: a fresh id and link code each time."""
    message = Message(
        idempotency_key=broadcast_idempotency_key("b-rows", customer_id),
        workflow_id="broadcast:b-rows",
        journey="broadcast",
        step="b-rows",
        customer_id=customer_id,
        template="welcome_back",
        category="marketing",
        to="+8613800000000",
        body="hi",
        params={"start_url": "https://s.example/x"},
        broadcast_id="b-rows",
        broadcast_pass=0,
    )
    return message, [Link(message_id=message.id, target_url="https://shop.example/new")]


async def test_a_retry_keeps_the_rows_stored_before_and_stores_the_rest(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    rows = BatchRows(sessions)
    first = [composed(c) for c in ("c1", "c2")]
    assert await rows.insert(first) == ([m for m, _ in first], [])
    retry = [composed(c) for c in ("c1", "c2", "c3", "c4")]
    stored, lost = await rows.insert(retry)
    assert sorted(m.customer_id for m in stored) == ["c3", "c4"]
    assert sorted(lost) == ["c1", "c2"]
    async with sessions() as session:
        messages = (await session.exec(select(Message.customer_id, Message.id, Message.params))).all()
        links = (await session.exec(select(Link.message_id))).all()
        count = (await session.exec(select(func.count()).select_from(Link))).one()
    ids = {customer: message_id for customer, message_id, _ in messages}
    assert sorted(ids) == ["c1", "c2", "c3", "c4"]
    # c1 and c2 keep the first attempt's rows; every row has its one link, and no other.
    assert ids["c1"] == first[0][0].id and ids["c2"] == first[1][0].id
    assert sorted(links) == sorted(ids.values()) and count == 4
    assert all(params == {"start_url": "https://s.example/x"} for _, _, params in messages)
    async with sessions() as session:
        row = await session.get(Message, ids["c3"])
        assert row is not None and row.created_at.tzinfo is not None and row.status == "pending"
        assert (
            await session.exec(select(col(Message.broadcast_pass)).where(Message.id == ids["c4"]))
        ).one() == 0


async def stored_rows(sessions: Any, count: int) -> list[str]:
    """``count`` pending rows ``c0``...; their ids."""
    rows = [composed(f"c{i}")[0] for i in range(count)]
    await BatchRows(sessions).insert([(m, []) for m in rows])
    return [m.id for m in rows]


async def block(sessions: Any, message_id: str) -> None:
    async with sessions() as session:
        await session.exec(update(TABLE).where(TABLE.c.id == message_id).values(status="blocked"))
        await session.commit()


async def columns(sessions: Any) -> dict[str, tuple[str | None, str | None, str]]:
    """Each row's (route, batch_ref, status), by id."""
    async with sessions() as session:
        found = await session.exec(select(Message.id, Message.route, Message.batch_ref, Message.status))
        return {i: (route, ref, status) for i, route, ref, status in found.all()}


async def test_rows_that_share_their_values_each_get_their_own(engine: AsyncEngine) -> None:
    """A few sets of values: one statement each, and each row gets its set, not its neighbour's;
    a row that is no longer pending keeps what it has."""
    sessions = session_factory(engine)
    ids = await stored_rows(sessions, 5)
    await block(sessions, ids[4])
    refs = ["a", "b", "a", "c", "a"]
    async with sessions() as session:
        await update_each(
            session,
            [{"id": i, "route": f"r-{ref}", "batch_ref": ref} for i, ref in zip(ids, refs, strict=True)],
            PENDING,
            status="submitted",
        )
        await session.commit()
    found = await columns(sessions)
    assert [found[i] for i in ids[:4]] == [(f"r-{ref}", ref, "submitted") for ref in refs[:4]]
    assert found[ids[4]] == (None, None, "blocked")


async def test_rows_with_many_sets_of_values_each_get_their_own(engine: AsyncEngine) -> None:
    """More sets than ``GROUPED_UPDATES``: one executemany, still each row its own values, and
    still none for a row that is no longer pending."""
    sessions = session_factory(engine)
    ids = await stored_rows(sessions, GROUPED_UPDATES + 3)
    await block(sessions, ids[-1])
    async with sessions() as session:
        await update_each(
            session, [{"id": i, "route": f"r{n}", "batch_ref": f"ref{n}"} for n, i in enumerate(ids)], PENDING
        )
        await session.commit()
    found = await columns(sessions)
    assert [found[i] for i in ids[:-1]] == [(f"r{n}", f"ref{n}", "pending") for n in range(len(ids) - 1)]
    assert found[ids[-1]] == (None, None, "blocked")


async def test_rows_with_values_that_cannot_be_grouped_each_get_their_own(engine: AsyncEngine) -> None:
    """A dict (a JSON column) is no key to group by: the rows go in one executemany."""
    sessions = session_factory(engine)
    ids = await stored_rows(sessions, 2)
    async with sessions() as session:
        await update_each(session, [{"id": i, "params": {"n": n}} for n, i in enumerate(ids)], PENDING)
        await session.commit()
    async with sessions() as session:
        found = dict((await session.exec(select(Message.id, Message.params))).all())
    assert [found[i] for i in ids] == [{"n": 0}, {"n": 1}]
