"""The shared pydantic payload converter: the same wire format, one warm cache."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter

from nudge.converter import SharedPydanticPayloadConverter, data_converter
from nudge.models import Event, SendDecision, SendResult


def test_shared_converter_instances_share_their_json_converter() -> None:
    """Every instance the SDK builds reuses the same JSON converter, so its TypeAdapter cache is
    filled once per type, not once per workflow run."""
    first, second = SharedPydanticPayloadConverter(), SharedPydanticPayloadConverter()
    assert first.converters[b"json/plain"] is second.converters[b"json/plain"]


def test_shared_converter_speaks_the_pydantic_converters_wire_format() -> None:
    """Payloads round-trip both ways between it and the SDK's pydantic converter (recorded
    histories and older clients keep working)."""
    values = [
        Event(event_id="e1", customer_id="c1", name="order_paid"),
        SendResult(message_id="m", decision=SendDecision.SENT),
    ]
    ours = data_converter.payload_converter.to_payloads(values)
    theirs = pydantic_data_converter.payload_converter.to_payloads(values)
    assert [p.data for p in ours] == [p.data for p in theirs]
    back = data_converter.payload_converter.from_payloads(theirs, [Event, SendResult])
    assert back == values
