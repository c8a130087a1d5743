"""The control API: replies in each provider's format, ledger filters, reset and config updates."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from nudge.signing import twilio_signature_valid
from simulator.app import Carrier
from simulator.callbacks import Callback
from simulator.ledger import LedgerEntry, new_id, now
from tests.polling import wait_until
from tests.simulator.conftest import Receiver, Sim, _config
from tests.simulator.signed import (
    ALI_BACKUP_KEY,
    ALI_KEY,
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    aliyun_rpc_params,
    aliyun_send,
    send_sms_params,
    twilio_send,
)


async def test_reply_posts_aliyun_sms_up(sim: Sim, receiver: Receiver) -> None:
    """An Aliyun reply is an SmsUp JSON array item with the 11-digit number and the content."""
    response = await sim.http.post(
        "/_sim/reply", json={"provider": "aliyun", "from": "+8613800138000", "to": "Nudge", "text": "退订"}
    )
    assert response.json() == {"posted": True, "status": 200}
    [item] = receiver.at("/aliyun/up")[0].json()
    assert (item["phone_number"], item["content"], item["dest_code"]) == ("13800138000", "退订", "01")
    assert item["send_time"] and item["sequence_id"]


async def test_reply_posts_tencent_reply_object(sim: Sim, receiver: Receiver) -> None:
    """A Tencent reply is one JSON object with nationcode, mobile, sign, text and a unix time."""
    response = await sim.http.post(
        "/_sim/reply", json={"provider": "tencent", "from": "+8613800138000", "to": "努济", "text": "R"}
    )
    assert response.json() == {"posted": True, "status": 200}
    reply = receiver.at("/tencent/reply")[0].json()
    assert {k: reply[k] for k in ("extend", "mobile", "nationcode", "sign", "text")} == {
        "extend": "",
        "mobile": "13800138000",
        "nationcode": "86",
        "sign": "努济",
        "text": "R",
    }
    assert isinstance(reply["time"], int)


@pytest.mark.parametrize(
    ("text", "opt_out"),
    [("STOP", "STOP"), (" unsubscribe ", "STOP"), ("Yes", "START"), ("info", "HELP"), ("stop please", None)],
)
async def test_reply_posts_signed_twilio_inbound(
    sim: Sim, receiver: Receiver, text: str, opt_out: str | None
) -> None:
    """A Twilio reply is a signed form post with OptOutType only for a whole-message keyword."""
    response = await sim.http.post(
        "/_sim/reply", json={"provider": "twilio", "from": "+14155550100", "to": TWILIO_FROM, "text": text}
    )
    assert response.json() == {"posted": True, "status": 200}
    [post] = receiver.at("/twilio/inbound")
    form = post.form()
    url = f"{receiver.url}/twilio/inbound"
    assert twilio_signature_valid(url, form, post.headers["x-twilio-signature"], TWILIO_TOKEN)
    fields = dict(form)
    assert (fields["From"], fields["To"], fields["Body"], fields["AccountSid"]) == (
        "+14155550100",
        TWILIO_FROM,
        text,
        TWILIO_SID,
    )
    assert (fields["NumMedia"], fields["FromCountry"]) == ("0", "US")
    assert fields.get("OptOutType") == opt_out


async def test_reply_without_a_url_is_409(sim: Sim, receiver: Receiver) -> None:
    """With no reply URL configured for the provider, /_sim/reply is a 409 and nothing is posted."""
    await sim.configure(aliyun_up_url=None)
    response = await sim.http.post(
        "/_sim/reply", json={"provider": "aliyun", "from": "+8613800138000", "to": "Nudge", "text": "R"}
    )
    assert response.status_code == 409
    assert "aliyun_up_url" in response.json()["detail"]
    assert receiver.received == []


async def test_ledger_filters_by_provider_and_account(sim: Sim) -> None:
    """?provider= and ?account= narrow the ledger."""
    await aliyun_send(sim.http)
    params = aliyun_rpc_params(
        "SendSms", send_sms_params(), key=ALI_BACKUP_KEY, secret="nudge-dev-backup-secret"
    )
    await sim.http.post("/aliyun/", params=params)
    await twilio_send(sim.http)
    assert len(await sim.ledger()) == 3
    assert len(await sim.ledger(provider="aliyun")) == 2
    assert [e["account"] for e in await sim.ledger(provider="aliyun", account=ALI_KEY)] == [ALI_KEY]
    assert [e["provider"] for e in await sim.ledger(account=TWILIO_SID)] == ["twilio"]


async def test_reset_forgets_messages_and_nonces(sim: Sim) -> None:
    """After /_sim/reset the ledger is empty and a nonce used before is accepted again."""
    await sim.http.post("/aliyun/", params=aliyun_rpc_params("SendSms", send_sms_params(), nonce="once"))
    assert (await sim.http.post("/_sim/reset")).json() == {"dropped": 1}
    again = await sim.http.post(
        "/aliyun/", params=aliyun_rpc_params("SendSms", send_sms_params(), nonce="once")
    )
    assert again.json()["Code"] == "OK"


async def test_config_update_is_partial(sim: Sim) -> None:
    """POST /_sim/config changes only the fields it names; faults arrive as plain JSON."""
    before = (await sim.http.get("/_sim/config")).json()
    after = (
        await sim.http.post(
            "/_sim/config", json={"faults": [{"provider": "twilio", "code": "21610", "rate": 0.5}]}
        )
    ).json()
    assert after["faults"] == [
        {
            "provider": "twilio",
            "code": "21610",
            "rate": 0.5,
            "account": None,
            "numbers": [],
            "message": None,
            "http_status": None,
        }
    ]
    assert {k: v for k, v in after.items() if k != "faults"} == {
        k: v for k, v in before.items() if k != "faults"
    }


def counted(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``/_sim/stats``'s figures counted from the ledger's own entries: the oracle."""
    per_number = Counter(e["to"] for e in entries)
    times = sorted(datetime.fromisoformat(e["received_at"]) for e in entries)
    return {
        "accepted": len(entries),
        "numbers": len(per_number),
        "repeated": sum(1 for n in per_number.values() if n > 1),
        "receipts_posted": sum(e["receipts_posted"] for e in entries),
        "first_at": times[0] if times else None,
        "last_at": times[-1] if times else None,
    }


async def stats(sim: Sim, provider: str | None = None) -> dict[str, Any]:
    params = {"provider": provider} if provider else {}
    figures: dict[str, Any] = (await sim.http.get("/_sim/stats", params=params)).json()
    for name in ("first_at", "last_at"):
        figures[name] = figures[name] and datetime.fromisoformat(figures[name])
    return figures


async def test_stats_agree_with_the_ledger_per_provider_and_after_a_reset(
    sim: Sim, receiver: Receiver
) -> None:
    """The running counts say what counting the ledger says: messages, numbers, numbers sent
    twice, receipts acknowledged, first and last arrival; for each provider API; and nothing
    once the carrier was reset."""
    await aliyun_send(sim.http, "13800138001,13800138002,13800138003")
    await aliyun_send(sim.http, "13800138002")
    await aliyun_send(sim.http, "13800138002")  # a third time: still one number sent twice or more
    await twilio_send(sim.http, "+14155550100")  # no StatusCallback: no receipt
    await twilio_send(sim.http, "+14155550101")

    async def receipts_all_posted() -> bool:
        entries = await sim.ledger(provider="aliyun")
        return len(entries) == 5 and all(e["receipts_posted"] for e in entries)

    await wait_until(receipts_all_posted, what="every Aliyun receipt acknowledged")
    for provider in (None, "aliyun", "twilio", "tencent"):
        entries = await sim.ledger(**({"provider": provider} if provider else {}))
        assert await stats(sim, provider) == counted(entries), provider
    assert (await stats(sim))["repeated"] == 1
    assert (await stats(sim, "twilio"))["numbers"] == 2

    await sim.http.post("/_sim/reset")
    assert await stats(sim) == counted([])
    await twilio_send(sim.http, "+14155550100")
    assert (await stats(sim))["repeated"] == 0, "a reset forgets the numbers seen before"


async def test_a_receipt_acknowledged_after_a_reset_counts_nowhere(receiver: Receiver) -> None:
    """A receipt in flight when the carrier is reset is acknowledged afterwards: it counts in no
    tally (the message is forgotten), and the post does not fail."""
    carrier = Carrier(_config(receiver.url))
    entry = LedgerEntry(
        id=new_id(), client_ref="r1", to="+8613800138001", sender="s", body="b", segments=1,
        received_at=now(), provider="aliyun",
    )  # fmt: skip
    try:
        await carrier.commit(None, [entry], lambda _entry, _config: [])  # type: ignore[arg-type]
        assert carrier.holds(entry)
        carrier.reset()
        assert await carrier._attempt([entry], Callback.json(f"{receiver.url}/aliyun/report", [{}]))
        assert (carrier.tallies.of(None).receipts_posted, carrier.tallies.of("aliyun").receipts_posted) == (
            0,
            0,
        )
    finally:
        await carrier.close()
