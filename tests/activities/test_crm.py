from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.testing import ActivityEnvironment

from activities.crm import CrmActivities
from nudge.models import Profile
from nudge.store import Customer


async def test_get_profile_known_customer_reads_crm_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A stored customer comes back with every profile field and exists=True."""
    async with sessions() as session:
        session.add(
            Customer(
                id="c1",
                name="Ada",
                phone="+8613800138000",
                lifecycle_stage="returning",
                country="CN",
                timezone="Asia/Shanghai",
                attributes={"tier": "gold"},
            )
        )
        await session.commit()

    profile = await ActivityEnvironment().run(CrmActivities(sessions).get_profile, "c1")

    assert profile == Profile(
        customer_id="c1",
        name="Ada",
        phone="+8613800138000",
        lifecycle_stage="returning",
        country="CN",
        timezone="Asia/Shanghai",
        attributes={"tier": "gold"},
        exists=True,
    )


async def test_get_profile_unknown_customer_is_bare(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An unknown customer reads as a bare profile with exists=False, not an error."""
    profile = await ActivityEnvironment().run(CrmActivities(sessions).get_profile, "ghost")
    assert profile == Profile(customer_id="ghost", exists=False)
    assert profile.phone is None and profile.name is None
