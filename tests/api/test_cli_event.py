"""``nudge event`` against the real gateway over loopback: what it says about unknown customers."""

from __future__ import annotations

from sqlmodel import select

from nudge.store import JourneyEntry
from tests.api.cli import nudge
from tests.api.conftest import Gateway


async def _entries(gateway: Gateway, customer_id: str) -> list[JourneyEntry]:
    async with gateway.sessions() as session:
        query = select(JourneyEntry).where(JourneyEntry.customer_id == customer_id)
        return list((await session.exec(query)).all())


async def test_cli_event_for_an_unknown_customer_warns_and_still_sends(
    gateway: Gateway, customer_id: str
) -> None:
    """An event for a customer the gateway does not know is sent, with a warning naming the
    customer and the command that adds them."""
    result = await nudge(gateway, "event", customer_id, "signed_up")
    assert result.exit_code == 0, result.output
    assert f"warning: the gateway has no customer {customer_id!r}" in result.stderr
    assert f"nudge customers add {customer_id} --phone" in result.stderr
    assert f"journey:onboarding:{customer_id}" in result.stdout
    assert [e.journey for e in await _entries(gateway, customer_id)] == ["onboarding"]


async def test_cli_event_require_customer_sends_nothing_for_an_unknown_customer(
    gateway: Gateway, customer_id: str
) -> None:
    """With --require-customer, an unknown customer exits 2: no journey starts, no profile appears."""
    result = await nudge(gateway, "event", customer_id, "signed_up", "--require-customer")
    assert result.exit_code == 2
    assert f"the gateway has no customer {customer_id!r}; nothing was sent" in result.stderr
    assert await _entries(gateway, customer_id) == []
    assert (await gateway.http.get(f"/v1/customers/{customer_id}")).status_code == 404


async def test_cli_event_for_a_known_customer_sends_without_a_warning(
    gateway: Gateway, customer_id: str
) -> None:
    """A customer with a profile and a phone gets no warning, with or without --require-customer."""
    profile = {"id": customer_id, "phone": "+8613800138000"}
    assert (await gateway.http.put(f"/v1/customers/{customer_id}", json=profile)).status_code == 200
    result = await nudge(gateway, "event", customer_id, "signed_up", "--require-customer")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert f"journey:onboarding:{customer_id}" in result.stdout


async def test_cli_event_for_a_customer_without_a_phone_warns(gateway: Gateway, customer_id: str) -> None:
    """A profile without a phone (one an earlier event created) is named in a warning."""
    assert (
        await gateway.http.put(f"/v1/customers/{customer_id}", json={"id": customer_id})
    ).status_code == 200
    result = await nudge(gateway, "event", customer_id, "signed_up")
    assert result.exit_code == 0, result.output
    assert f"warning: customer {customer_id!r} has no phone number" in result.stderr
