"""Provider callbacks in their real formats: Aliyun, Twilio and Tencent receipts and replies."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlmodel import col, select
from temporalio.worker import Worker

from activities.crm import CrmActivities
from activities.routing import build_router
from activities.send import SendActivities
from nudge.models import Event, JourneyInput, JourneyResult, MessageStatus
from nudge.phone import phone_hash
from nudge.quiet_hours import ALWAYS_OPEN
from nudge.routes import DEV_TWILIO_ACCOUNTS, local_routes
from nudge.signing import twilio_signature
from nudge.store import InboundMessage, JourneyEntry, Message, MessageStatusChange, Suppression
from simulator.app import SimConfig
from simulator.app import create_app as create_sim
from tests.api.conftest import Gateway
from tests.api.test_gateway import add_message, event
from tests.polling import wait_until
from tests.servers import serve
from workflows import JOURNEYS, PaymentSuccess

TOKEN = "nudge-dev-callback-token"
((TWILIO_SID, TWILIO_TOKEN),) = DEV_TWILIO_ACCOUNTS.items()
PUBLIC = "http://127.0.0.1:8000"  # the gateway_url the test settings sign against


def aliyun_report(message: Message, **fields: Any) -> dict[str, Any]:
    return {
        "phone_number": (message.to or "")[3:],
        "send_time": "2026-11-25 10:00:00",
        "report_time": "2026-11-25 10:00:05",
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": message.provider_message_id,
        "out_id": message.id,
        **fields,
    }


async def status_of(gateway: Gateway, message_id: str) -> str:
    async with gateway.sessions() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message.status


async def post_twilio(gateway: Gateway, path: str, form: dict[str, str], *, token: str = TWILIO_TOKEN) -> Any:
    signature = twilio_signature(PUBLIC + path, list(form.items()), token)
    return await gateway.http.post(
        path,
        content=urlencode(form),
        headers={"content-type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


async def test_aliyun_report_applies_receipt_and_answers_like_aliyun_expects(
    gateway: Gateway, customer_id: str
) -> None:
    """An SmsReport array marks the message delivered and gets {"code":0,"msg":"接收成功"}."""
    message = await add_message(gateway, customer_id, provider="aliyun", provider_message_id="900^0")
    response = await gateway.http.post(f"/v1/webhooks/aliyun/{TOKEN}/report", json=[aliyun_report(message)])
    assert (response.status_code, response.json()) == (200, {"code": 0, "msg": "接收成功"})
    assert await status_of(gateway, message.id) == "delivered"


async def test_aliyun_report_with_wrong_token_is_rejected(gateway: Gateway, customer_id: str) -> None:
    """Aliyun does not sign pushes; a wrong token in the URL gets 403 and changes nothing."""
    message = await add_message(gateway, customer_id, provider="aliyun", provider_message_id="901^0")
    response = await gateway.http.post("/v1/webhooks/aliyun/guess/report", json=[aliyun_report(message)])
    assert response.status_code == 403
    assert await status_of(gateway, message.id) == "submitted"


async def test_aliyun_report_redelivery_is_idempotent_and_monotonic(
    gateway: Gateway, customer_id: str
) -> None:
    """Aliyun pushes again after a timeout: the second copy is stored but changes nothing."""
    message = await add_message(gateway, customer_id, provider="aliyun", provider_message_id="902^0")
    url = f"/v1/webhooks/aliyun/{TOKEN}/report"
    for _ in range(2):
        assert (await gateway.http.post(url, json=[aliyun_report(message)])).status_code == 200
    failed = aliyun_report(message, success=False, err_code="MK:0001")
    assert (await gateway.http.post(url, json=[failed])).status_code == 200
    assert await status_of(gateway, message.id) == "delivered"
    async with gateway.sessions() as session:
        changes = (
            await session.exec(
                select(MessageStatusChange).where(MessageStatusChange.message_id == message.id)
            )
        ).all()
    assert [c.applied for c in changes] == [True, False, False]


async def test_aliyun_batch_receipts_match_by_biz_id_and_number(gateway: Gateway, customer_id: str) -> None:
    """SendBatchSms shares one BizId and OutId: each receipt finds its message by number."""
    first = await add_message(gateway, customer_id, provider="aliyun", provider_message_id="903^0")
    second = await add_message(
        gateway, customer_id, provider="aliyun", provider_message_id="903^0", to="+8613800138009"
    )
    report = aliyun_report(second, out_id=first.id)  # the batch's OutId is the first message's
    assert (await gateway.http.post(f"/v1/webhooks/aliyun/{TOKEN}/report", json=[report])).status_code == 200
    assert (await status_of(gateway, first.id), await status_of(gateway, second.id)) == (
        "submitted",
        "delivered",
    )


async def test_aliyun_report_array_is_applied_receipt_by_receipt(gateway: Gateway, customer_id: str) -> None:
    """One SmsReport array, stored in one transaction, is applied as receipts one by one would
    be: a batch's two numbers each move their own message, a redelivered copy in the same array
    is kept but not applied, and a report for a BizId nobody has is kept unmatched."""
    batch, key = f"905{uuid.uuid4().hex[:6]}^0", uuid.uuid4().hex
    # The first in id order is the one a match ignoring the number would take for both.
    first = await add_message(
        gateway, customer_id, id=f"a{key}", provider="aliyun", provider_message_id=batch
    )
    second = await add_message(
        gateway, customer_id, id=f"b{key}", provider="aliyun", provider_message_id=batch, to="+8613800138009"
    )
    reports = [
        aliyun_report(first),
        aliyun_report(second, out_id=first.id, success=False, err_code="MK:0012"),
        aliyun_report(first),
        aliyun_report(first, biz_id="nobody^0", out_id=None),
    ]
    response = await gateway.http.post(f"/v1/webhooks/aliyun/{TOKEN}/report", json=reports)
    assert (response.status_code, response.json()) == (200, {"code": 0, "msg": "接收成功"})
    async with gateway.sessions() as session:
        rows = [await session.get(Message, m.id) for m in (first, second)]
        stored = (
            await session.exec(
                select(MessageStatusChange)
                .where(col(MessageStatusChange.provider_message_id).in_([batch, "nobody^0"]))
                .order_by(col(MessageStatusChange.id))
            )
        ).all()
    assert [(r.status, r.error_code) for r in rows if r is not None] == [
        ("delivered", None),
        ("undelivered", "MK:0012"),
    ]
    assert [(c.message_id, c.status, c.applied) for c in stored] == [
        (first.id, "delivered", True),
        (second.id, "undelivered", True),
        (first.id, "delivered", False),
        (None, "delivered", False),
    ]


async def test_aliyun_report_rejects_malformed_body(gateway: Gateway) -> None:
    """A body that is not an SmsReport array, or a report without its number or outcome, gets 422
    naming the problem, and nothing is stored."""
    url = f"/v1/webhooks/aliyun/{TOKEN}/report"
    not_a_list = await gateway.http.post(url, json={"biz_id": "x"})
    incomplete = await gateway.http.post(url, json=[{"biz_id": "x"}])

    assert (not_a_list.status_code, incomplete.status_code) == (422, 422)
    assert [(e["loc"], e["type"]) for e in not_a_list.json()["detail"]] == [(["body"], "list_type")]
    assert [(e["loc"], e["type"]) for e in incomplete.json()["detail"]] == [
        (["body", 0, "phone_number"], "missing"),
        (["body", 0, "success"], "missing"),
    ]
    async with gateway.sessions() as session:
        assert (await session.exec(select(MessageStatusChange))).all() == []


async def test_twilio_status_callback_with_valid_signature_is_applied(
    gateway: Gateway, customer_id: str
) -> None:
    """A signed status callback moves the message to delivered; the answer is 204."""
    sid = "SM" + uuid.uuid4().hex
    message = await add_message(
        gateway, customer_id, provider="twilio", provider_message_id=sid, to="+15005550001"
    )
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "AccountSid": TWILIO_SID,
        "From": "+15005550006",
        "To": "+15005550001",
        "ApiVersion": "2010-04-01",
        "RawDlrDoneDate": "2611251000",
    }
    response = await post_twilio(gateway, "/v1/webhooks/twilio/status", form)
    assert response.status_code == 204
    assert await status_of(gateway, message.id) == "delivered"
    # Out of order: a late "sent" after "delivered" is stored, and the status stays delivered.
    response = await post_twilio(gateway, "/v1/webhooks/twilio/status", form | {"MessageStatus": "sent"})
    assert response.status_code == 204
    assert await status_of(gateway, message.id) == "delivered"


async def test_twilio_status_callback_with_bad_or_missing_signature_gets_403(
    gateway: Gateway, customer_id: str
) -> None:
    """A forged signature, a wrong token or no signature at all is refused and changes nothing."""
    sid = "SM" + uuid.uuid4().hex
    message = await add_message(gateway, customer_id, provider="twilio", provider_message_id=sid)
    form = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": TWILIO_SID}
    forged = await post_twilio(gateway, "/v1/webhooks/twilio/status", form, token="not-the-token")
    missing = await gateway.http.post("/v1/webhooks/twilio/status", data=form)
    signature = twilio_signature(PUBLIC + "/v1/webhooks/twilio/status", list(form.items()), TWILIO_TOKEN)
    tampered = await gateway.http.post(
        "/v1/webhooks/twilio/status",
        content=urlencode(form | {"MessageStatus": "failed"}),
        headers={"content-type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert [r.status_code for r in (forged, missing, tampered)] == [403, 403, 403]
    assert await status_of(gateway, message.id) == "submitted"


async def test_twilio_inbound_stop_is_stored_once_and_suppresses(gateway: Gateway) -> None:
    """An inbound STOP is stored (a redelivery is not) and the number is suppressed."""
    number = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": TWILIO_SID,
        "From": number,
        "To": "+15005550006",
        "Body": " stop ",
        "OptOutType": "STOP",
        "NumMedia": "0",
    }
    for _ in range(2):
        response = await post_twilio(gateway, "/v1/webhooks/twilio/inbound", form)
        assert response.status_code == 200
        assert "<Response/>" in response.text
    async with gateway.sessions() as session:
        replies = (
            await session.exec(select(InboundMessage).where(InboundMessage.from_number == number))
        ).all()
        suppression = await session.get(Suppression, phone_hash(number))
    assert [(r.keyword, r.text) for r in replies] == [("stop", " stop ")]
    assert suppression is not None and suppression.source == "twilio"


async def test_tencent_report_and_reply(gateway: Gateway, customer_id: str) -> None:
    """A Tencent status report applies by SerialNo; a 退订 reply suppresses; both answer result 0."""
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    message = await add_message(gateway, customer_id, provider="tencent", provider_message_id=serial)
    report = {
        "user_receive_time": "2026-11-25 10:00:03",
        "nationcode": "86",
        "mobile": "13800138000",
        "report_status": "FAIL",
        "errmsg": "MK:0005",
        "description": "用户号码关机",
        "sid": serial,
    }
    response = await gateway.http.post(f"/v1/webhooks/tencent/{TOKEN}/report", json=[report])
    assert (response.status_code, response.json()) == (200, {"result": 0, "errmsg": "OK"})
    async with gateway.sessions() as session:
        row = await session.get(Message, message.id)
    assert row is not None and (row.status, row.error_code) == ("undelivered", "MK:0005")

    mobile = f"139{uuid.uuid4().int % 10**8:08d}"
    reply = {
        "extend": "",
        "mobile": mobile,
        "nationcode": "86",
        "sign": "Nudge",
        "text": "退订",
        "time": 1764036000,
    }
    response = await gateway.http.post(f"/v1/webhooks/tencent/{TOKEN}/reply", json=[reply])
    assert response.json() == {"result": 0, "errmsg": "OK"}
    async with gateway.sessions() as session:
        assert await session.get(Suppression, phone_hash(f"+86{mobile}")) is not None
    forged = await gateway.http.post("/v1/webhooks/tencent/wrong/reply", json=[reply])
    assert forged.status_code == 403


async def test_receipt_before_send_is_kept_and_applied_later(gateway: Gateway, customer_id: str) -> None:
    """Tencent pushes the report before it answers SendSms: the gateway keeps it unmatched, and
    when the send's answer is recorded the report is applied (the message is delivered) and the
    journey waiting for it learns so from the send's result and completes."""
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    r = await gateway.http.put(f"/v1/customers/{customer_id}", json={"id": customer_id, "phone": phone})
    assert r.status_code == 200, r.text
    webhook = f"{str(gateway.http.base_url).rstrip('/')}/v1/webhooks/tencent/{TOKEN}/report"
    # receipt_reorder_rate=1: the simulator posts the report, and hears the gateway's answer,
    # before it answers the send.
    carrier = create_sim(SimConfig(latency_ms=0, receipt_reorder_rate=1.0, tencent_report_url=webhook))
    task_queue = f"early-{uuid.uuid4().hex[:12]}"
    async with serve(carrier) as carrier_url, httpx.AsyncClient(trust_env=False) as http:
        [route] = [c for c in local_routes(carrier_url) if c.name == "tencent-cn"]
        sends = SendActivities(
            gateway.sessions, build_router([route], http), link_base_url=PUBLIC, quiet_hours=ALWAYS_OPEN
        )
        worker = Worker(
            gateway.client,
            task_queue=task_queue,
            workflows=list(JOURNEYS),
            activities=[sends.send_message, CrmActivities(gateway.sessions).get_profile],
        )
        async with worker:
            handle = await gateway.client.start_workflow(
                PaymentSuccess.__name__,
                JourneyInput(customer_id=customer_id, key="o1"),
                id=PaymentSuccess.workflow_id(customer_id, "o1"),
                task_queue=task_queue,
                start_signal="event",
                start_signal_args=[
                    Event(
                        event_id=uuid.uuid4().hex,
                        customer_id=customer_id,
                        name="order_paid",
                        properties={"order_id": "o1", "amount": "9.90"},
                    )
                ],
                result_type=JourneyResult,
            )
            # Without the report applied, the journey would sit out its receipt window
            # (time-skipped) and end undelivered:no_receipt.
            result = await handle.result()

    assert (result.outcome, result.reason) == ("completed", None)
    [message] = result.messages
    assert message.status is MessageStatus.DELIVERED
    async with gateway.sessions() as session:
        row = await session.get(Message, message.message_id)
        changes = (
            await session.exec(
                select(MessageStatusChange)
                .where(MessageStatusChange.message_id == message.message_id)
                .order_by(col(MessageStatusChange.id))
            )
        ).all()
    assert row is not None and (row.status, row.provider) == ("delivered", "tencent")
    # The report was stored first, unmatched; recording the send attached it and applied it.
    assert [(c.status, c.applied, c.provider_message_id) for c in changes] == [
        ("delivered", True, row.provider_message_id),
        ("submitted", True, row.provider_message_id),
    ]


async def test_receipt_signals_the_waiting_journey(gateway: Gateway, customer_id: str) -> None:
    """The payment confirmation waits for its receipt; a Tencent report completes it."""
    await gateway.http.post("/v1/events", json=event(customer_id, "order_paid", order_id="o9", amount="1"))
    await wait_until(
        lambda: bool(gateway.carrier.requests), what="the send reached the fake carrier", timeout=30
    )
    [request] = gateway.carrier.requests
    sent = gateway.carrier.results[request.idempotency_key]
    serial = f"2433:{uuid.uuid4().int % 10**12}"
    await add_message(
        gateway,
        customer_id,
        id=sent.message_id,
        workflow_id=request.workflow_id,
        provider="tencent",
        provider_message_id=serial,
        notify_receipt=True,
    )
    report = {
        "mobile": "13800138000",
        "nationcode": "86",
        "report_status": "SUCCESS",
        "errmsg": "DELIVRD",
        "sid": serial,
    }
    assert (await gateway.http.post(f"/v1/webhooks/tencent/{TOKEN}/report", json=[report])).status_code == 200
    result = await gateway.client.get_workflow_handle(request.workflow_id, result_type=JourneyResult).result()
    assert result.outcome == "completed"
    assert result.messages[0].status is MessageStatus.DELIVERED


async def test_simulator_webhook_is_closed_without_a_simulator_route(db_url: str, engine: object) -> None:
    """The unsigned simulator endpoint answers 404 unless a simulator route is configured (on a
    database ``engine`` upgraded: the gateway refuses one behind)."""
    from temporalio.client import Client

    from nudge.settings import Settings
    from starter.api import create_app
    from tests.servers import serve

    settings = Settings(database_url=db_url, routes=[])  # the local routes: no native simulator route
    client = await Client.connect("127.0.0.1:1", lazy=True)
    async with serve(create_app(settings, client=client)) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/v1/webhooks/simulator/status", json={"id": "SIM1", "status": "delivered"}
        )
    assert response.status_code == 404


def test_gateway_refuses_dev_token_with_real_providers() -> None:
    """With a real Aliyun route, the development callback token stops the gateway at start."""
    import pytest as _pytest
    from pydantic import SecretStr

    from nudge.routes import RouteConfig
    from nudge.settings import Settings
    from starter.api.routes.webhooks.common import check_callback_token

    real = RouteConfig(name="ali", provider="aliyun", access_key_id="AK", access_key_secret=SecretStr("s"))
    from nudge.errors import ConfigurationError

    with _pytest.raises(ConfigurationError, match="routes ali send through real providers"):
        check_callback_token(Settings(routes=[real]))
    check_callback_token(Settings(routes=[real], callback_token=SecretStr("a-real-secret")))
    check_callback_token(Settings(routes=[]))  # the local simulator routes are fine


async def test_stop_reply_ends_marketing_journeys_and_start_resubscribes(
    gateway: Gateway, customer_id: str
) -> None:
    """STOP from a customer's number: the number is suppressed (hashed), their running marketing
    journey exits as opted_out; START removes the suppression again."""
    number = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    r = await gateway.http.put(f"/v1/customers/{customer_id}", json={"id": customer_id, "phone": number})
    assert r.status_code == 200, r.text
    await gateway.http.post("/v1/events", json=event(customer_id, "cart_abandoned", cart_id="k1"))
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": TWILIO_SID, "From": number, "Body": "STOP"}
    assert (await post_twilio(gateway, "/v1/webhooks/twilio/inbound", form)).status_code == 200

    workflow_id = f"journey:cart_abandonment:{customer_id}:k1"
    result = await gateway.client.get_workflow_handle(workflow_id, result_type=JourneyResult).result()
    assert (result.outcome, result.reason) == ("exited", "opted_out")
    async with gateway.sessions() as session:
        assert await session.get(Suppression, phone_hash(number)) is not None
        assert await session.get(Suppression, number) is None  # never the number itself

    start = form | {"MessageSid": "SM" + uuid.uuid4().hex, "Body": "start"}
    assert (await post_twilio(gateway, "/v1/webhooks/twilio/inbound", start)).status_code == 200
    async with gateway.sessions() as session:
        assert await session.get(Suppression, phone_hash(number)) is None


def tencent_reply(mobile: str, text: str, at: int) -> dict[str, Any]:
    return {"extend": "", "mobile": mobile, "nationcode": "86", "sign": "Nudge", "text": text, "time": at}


async def test_help_reply_answers_once_with_the_help_template(gateway: Gateway, customer_id: str) -> None:
    """HELP from a customer's number starts the HelpReply journey, which sends the help_reply
    template once; INFO a moment later gets no second answer (cool-down); on Twilio, which answers
    HELP itself, Nudge does not answer too."""
    mobile = f"139{uuid.uuid4().int % 10**8:08d}"
    r = await gateway.http.put(
        f"/v1/customers/{customer_id}", json={"id": customer_id, "phone": f"+86{mobile}"}
    )
    assert r.status_code == 200, r.text
    for at, text in ((1764036000, "HELP"), (1764036005, " info ")):
        response = await gateway.http.post(
            f"/v1/webhooks/tencent/{TOKEN}/reply", json=[tencent_reply(mobile, text, at)]
        )
        assert response.json() == {"result": 0, "errmsg": "OK"}

    handle = gateway.client.get_workflow_handle(
        f"journey:help_reply:{customer_id}", result_type=JourneyResult
    )
    result = await handle.result()
    assert result.outcome == "completed"
    sent = [(r.customer_id, r.template, r.category.value) for r in gateway.carrier.requests]
    assert sent == [(customer_id, "help_reply", "transactional")]

    twilio_number = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    other = f"{customer_id}-us"
    r = await gateway.http.put(f"/v1/customers/{other}", json={"id": other, "phone": twilio_number})
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": TWILIO_SID,
        "From": twilio_number,
        "Body": "HELP",
    }
    assert (await post_twilio(gateway, "/v1/webhooks/twilio/inbound", form)).status_code == 200
    async with gateway.sessions() as session:
        entries = (await session.exec(select(JourneyEntry).where(JourneyEntry.customer_id == other))).all()
    assert entries == []


async def test_reply_redelivery_reapplies_only_the_latest(gateway: Gateway) -> None:
    """A redelivered STOP whose first delivery was stored without its effect suppresses the number;
    a redelivered older STOP does not undo a newer START."""
    mobile = f"139{uuid.uuid4().int % 10**8:08d}"
    number = f"+86{mobile}"
    stop = tencent_reply(mobile, "TD", 1764036000)
    async with gateway.sessions() as session:  # stored, then the first delivery failed
        session.add(
            InboundMessage(
                provider="tencent", provider_ref=f"{number}:1764036000:TD", from_number=number, text="TD"
            )
        )
        await session.commit()

    await gateway.http.post(f"/v1/webhooks/tencent/{TOKEN}/reply", json=[stop])
    async with gateway.sessions() as session:
        assert await session.get(Suppression, phone_hash(number)) is not None

    start = tencent_reply(mobile, "START", 1764036100)
    await gateway.http.post(f"/v1/webhooks/tencent/{TOKEN}/reply", json=[start])
    await gateway.http.post(f"/v1/webhooks/tencent/{TOKEN}/reply", json=[stop])  # redelivered, older
    async with gateway.sessions() as session:
        assert await session.get(Suppression, phone_hash(number)) is None
