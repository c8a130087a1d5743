"""Contract tests: each adapter against the carrier simulator's real wire formats, over loopback.

For every provider: a send is accepted and lands in the ledger once, a batch goes out in one call,
a lookup finds a send whose answer was lost, and each error class comes back as Nudge's own type.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from activities.providers.base import Submission
from activities.routing import build_provider, build_router
from nudge.errors import (
    AccountProviderError,
    DeferredProviderError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from nudge.routes import RouteConfig, local_routes
from tests.carrier import configure, ledger
from tests.providers.conftest import (
    ALIYUN_KEY,
    BACKUP_KEY,
    BACKUP_SECRET,
    CN,
    TENCENT_ID,
    TWILIO_SID,
    US,
    aliyun,
    sms,
    tencent,
    twilio,
    with_code,
)

# ----- Aliyun ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signing", ["rpc", "acs3"])
async def test_aliyun_send_accepted_and_recorded_once(
    http: httpx.AsyncClient, carrier: str, signing: str
) -> None:
    """SendSms, signed either way, is accepted; the ledger holds the rendered text and our OutId."""
    key, secret = (ALIYUN_KEY, None) if signing == "rpc" else (BACKUP_KEY, BACKUP_SECRET)
    provider = aliyun(
        http,
        carrier,
        signing=signing,
        **({"access_key_id": key, "access_key_secret": secret} if secret else {}),
    )
    message = with_code(sms(CN), "aliyun")
    submission = await provider.send(message)
    [entry] = await ledger(http, carrier, provider="aliyun")
    assert submission.provider_message_id == entry["provider_id"]
    assert (entry["to"], entry["client_ref"], entry["account"], entry["signature"]) == (
        CN,
        "m-1",
        key,
        "Nudge",
    )
    assert entry["body"] == f"【Nudge】{message.body}"
    assert entry["template_code"] == message.template_code


async def test_aliyun_batch_is_one_call_with_one_biz_id(http: httpx.AsyncClient, carrier: str) -> None:
    """SendBatchSms takes the batch in one request; every number shares its BizId."""
    numbers = [f"+861380013800{i}" for i in range(3)]
    batch = [with_code(sms(n, message_id=f"m-{i}"), "aliyun") for i, n in enumerate(numbers)]
    outcomes = await aliyun(http, carrier).send_batch(batch)
    assert all(isinstance(o, Submission) for o in outcomes)
    assert len({o.provider_message_id for o in outcomes if isinstance(o, Submission)}) == 1
    assert sorted(e["to"] for e in await ledger(http, carrier)) == sorted(numbers)


async def test_aliyun_lookup_finds_a_send_whose_answer_was_lost(
    http: httpx.AsyncClient, carrier: str
) -> None:
    """The carrier accepts, the answer never comes (timeout); QuerySendDetails finds it by OutId."""
    await configure(http, carrier, timeout_rate=1.0, timeout_s=3)
    provider = aliyun(http, carrier)
    message = with_code(sms(CN, message_id="lost-1"), "aliyun")
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await aliyun(impatient, carrier).send(message)
    await configure(http, carrier, timeout_rate=0.0)
    assert await provider.lookup(message, since=since) is not None
    assert await provider.lookup(message.model_copy(update={"message_id": "never-sent"}), since=since) is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("Throttling.User", RetryableProviderError),
        ("isv.BUSINESS_LIMIT_CONTROL", DeferredProviderError),
        ("isv.AMOUNT_NOT_ENOUGH", AccountProviderError),
        ("isv.OUT_OF_SERVICE", AccountProviderError),
        ("isv.DAY_LIMIT_CONTROL", AccountProviderError),
        ("isv.MOBILE_NUMBER_ILLEGAL", PermanentProviderError),
        ("isv.TEMPLATE_PARAMS_ILLEGAL", PermanentProviderError),
        ("isv.BLACK_KEY_CONTROL_LIMIT", PermanentProviderError),
    ],
)
async def test_aliyun_error_classes(http: httpx.AsyncClient, carrier: str, code: str, kind: type) -> None:
    """Each injected Aliyun code surfaces as its Nudge class, and nothing reaches the ledger."""
    await configure(http, carrier, faults=[{"provider": "aliyun", "code": code}])
    with pytest.raises(ProviderError) as raised:
        await aliyun(http, carrier).send(with_code(sms(CN), "aliyun"))
    assert type(raised.value) is kind and raised.value.code == code
    assert await ledger(http, carrier) == []


async def test_aliyun_real_validation_errors(http: httpx.AsyncClient, carrier: str) -> None:
    """The simulator's own checks: a bad number, a missing template variable, a wrong secret."""
    provider = aliyun(http, carrier)
    with pytest.raises(PermanentProviderError, match="isv.MOBILE_NUMBER_ILLEGAL"):
        await provider.send(with_code(sms("+8612345"), "aliyun"))
    missing = with_code(sms(CN), "aliyun").model_copy(update={"template_params": {"order_id": "o-1"}})
    with pytest.raises(PermanentProviderError, match="isv.TEMPLATE_MISSING_PARAMETERS"):
        await provider.send(missing)
    with pytest.raises(AccountProviderError, match="SignatureDoesNotMatch"):
        await aliyun(http, carrier, access_key_secret="wrong").send(with_code(sms(CN), "aliyun"))


async def test_aliyun_rate_limit_throttles(http: httpx.AsyncClient, carrier: str) -> None:
    """Above the accepted rate the carrier answers Throttling.User, which is retryable."""
    await configure(http, carrier, rate_limit_tps=1)
    provider = aliyun(http, carrier)
    outcomes: list[Submission | RetryableProviderError] = []
    for i in range(3):
        try:
            outcomes.append(await provider.send(with_code(sms(CN, message_id=f"r{i}"), "aliyun")))
        except RetryableProviderError as exc:
            outcomes.append(exc)
    assert isinstance(outcomes[0], Submission)
    assert any(isinstance(o, RetryableProviderError) and o.code == "Throttling.User" for o in outcomes)


# ----- Twilio ---------------------------------------------------------------------------------


async def test_twilio_send_accepted_and_recorded_once(http: httpx.AsyncClient, carrier: str) -> None:
    """Create Message with basic auth: the SID comes back and the ledger has our body from our number."""
    message = sms(US).model_copy(update={"status_callback": "http://127.0.0.1:9/status"})
    submission = await twilio(http, carrier).send(message)
    [entry] = await ledger(http, carrier, provider="twilio")
    assert submission.provider_message_id == entry["provider_id"]
    assert (submission.provider_message_id or "").startswith("SM") and submission.segments == 1
    assert (entry["to"], entry["body"], entry["account"]) == (US, message.body, TWILIO_SID)


async def test_twilio_lookup_finds_a_send_whose_answer_was_lost(
    http: httpx.AsyncClient, carrier: str
) -> None:
    """Twilio has no client reference: the list of messages to the number, matched by body, finds it."""
    await configure(http, carrier, timeout_rate=1.0, timeout_s=3)
    message = sms(US, order_id="o-lost")
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await twilio(impatient, carrier).send(message)
    await configure(http, carrier, timeout_rate=0.0)
    found = await twilio(http, carrier).lookup(message, since=since)
    assert found is not None and found.provider_message_id == (await ledger(http, carrier))[0]["provider_id"]
    assert await twilio(http, carrier).lookup(sms(US, order_id="o-other"), since=since) is None


@pytest.mark.parametrize(
    ("code", "kind", "opted_out"),
    [
        ("20429", RetryableProviderError, False),
        ("20003", AccountProviderError, False),
        ("21211", PermanentProviderError, False),
        ("21614", PermanentProviderError, False),
        ("21610", PermanentProviderError, True),
        ("21611", DeferredProviderError, False),
    ],
)
async def test_twilio_error_classes(
    http: httpx.AsyncClient, carrier: str, code: str, kind: type, opted_out: bool
) -> None:
    """Each injected Twilio code surfaces as its Nudge class; 21610 marks the number opted out."""
    await configure(http, carrier, faults=[{"provider": "twilio", "code": code}])
    with pytest.raises(ProviderError) as raised:
        await twilio(http, carrier).send(sms(US))
    assert type(raised.value) is kind and raised.value.code == code
    assert getattr(raised.value, "opted_out", False) is opted_out
    assert await ledger(http, carrier) == []


async def test_twilio_wrong_token_is_account_level(http: httpx.AsyncClient, carrier: str) -> None:
    """Basic auth with a wrong token gets 20003, which pauses the route rather than failing the message."""
    with pytest.raises(AccountProviderError, match="20003"):
        await twilio(http, carrier, auth_token="wrong").send(sms(US))


# ----- Tencent --------------------------------------------------------------------------------


async def test_tencent_send_accepted_and_recorded_once(http: httpx.AsyncClient, carrier: str) -> None:
    """TC3-signed SendSms: SerialNo and Fee come back; SessionContext carries our id."""
    message = with_code(sms(CN), "tencent")
    submission = await tencent(http, carrier).send(message)
    [entry] = await ledger(http, carrier, provider="tencent")
    assert submission.provider_message_id == entry["provider_id"]
    assert submission.segments == entry["segments"]
    assert (entry["to"], entry["client_ref"], entry["account"]) == (CN, "m-1", TENCENT_ID)
    assert entry["body"] == f"【Nudge】{message.body}"


async def test_tencent_batch_parses_per_number_results(http: httpx.AsyncClient, carrier: str) -> None:
    """One SendSms for many numbers; a bad number fails alone and the rest go out."""
    actions: list[str] = []

    async def record(request: httpx.Request) -> None:
        actions.append(request.headers.get("x-tc-action", ""))

    numbers = ["+8613800138001", "+8612345", "+8613800138003"]
    batch = [with_code(sms(n, message_id=f"m-{i}"), "tencent") for i, n in enumerate(numbers)]
    async with httpx.AsyncClient(transport=AiohttpTransport(), event_hooks={"request": [record]}) as counted:
        outcomes = await tencent(counted, carrier).send_batch(batch)
    assert actions == ["SendSms"]
    assert isinstance(outcomes[0], Submission) and isinstance(outcomes[2], Submission)
    assert isinstance(outcomes[1], PermanentProviderError)
    assert outcomes[1].code == "InvalidParameterValue.IncorrectPhoneNumber"
    assert sorted(e["to"] for e in await ledger(http, carrier)) == [numbers[0], numbers[2]]


async def test_tencent_lookup_finds_a_send_whose_answer_was_lost(
    http: httpx.AsyncClient, carrier: str
) -> None:
    """PullSmsSendStatusByPhoneNumber finds the send by SessionContext."""
    await configure(http, carrier, timeout_rate=1.0, timeout_s=3)
    message = with_code(sms(CN, message_id="lost-t"), "tencent")
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await tencent(impatient, carrier).send(message)
    await configure(http, carrier, timeout_rate=0.0)
    found = await tencent(http, carrier).lookup(message, since=since)
    assert found is not None and found.provider_message_id == (await ledger(http, carrier))[0]["provider_id"]
    assert (
        await tencent(http, carrier).lookup(message.model_copy(update={"message_id": "x"}), since=since)
        is None
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("RequestLimitExceeded", RetryableProviderError),
        ("LimitExceeded.PhoneNumberOneHourLimit", DeferredProviderError),
        ("FailedOperation.InsufficientBalanceInSmsPackage", AccountProviderError),
        ("FailedOperation.PhoneNumberInBlacklist", PermanentProviderError),
        ("InvalidParameterValue.IncorrectPhoneNumber", PermanentProviderError),
    ],
)
async def test_tencent_error_classes(http: httpx.AsyncClient, carrier: str, code: str, kind: type) -> None:
    """Each injected Tencent code, request-level or per number, surfaces as its Nudge class."""
    await configure(http, carrier, faults=[{"provider": "tencent", "code": code}])
    with pytest.raises(ProviderError) as raised:
        await tencent(http, carrier).send(with_code(sms(CN), "tencent"))
    assert type(raised.value) is kind and raised.value.code == code
    assert await ledger(http, carrier) == []


async def test_tencent_wrong_secret_is_account_level(http: httpx.AsyncClient, carrier: str) -> None:
    """A TC3 signature made with the wrong key gets AuthFailure.SignatureFailure."""
    with pytest.raises(AccountProviderError, match="AuthFailure.SignatureFailure"):
        await tencent(http, carrier, secret_key="wrong").send(with_code(sms(CN), "tencent"))


# ----- Routes to adapters -----------------------------------------------------------------------


async def test_build_router_wires_each_local_route_to_its_account(
    http: httpx.AsyncClient, carrier: str
) -> None:
    """Each default route's adapter sends with that route's own credentials: the simulator checks
    every signature and secret, and its ledger names the account each message came in on."""
    router = build_router(local_routes(carrier), http)
    for route in router.routes:
        to = US if route.config.provider == "twilio" else CN
        message = with_code(sms(to, message_id=f"m-{route.name}"), route.config.provider)
        await route.provider.send(message.model_copy(update={"signature": route.config.signature}))
    entries = {e["client_ref"] or e["provider"]: e for e in await ledger(http, carrier)}
    assert {key: (e["provider"], e["account"]) for key, e in entries.items()} == {
        "m-aliyun-cn": ("aliyun", "LTAI5tNudgeDevPrimary"),
        "m-tencent-cn": ("tencent", "AKIDNudgeDevTencent"),
        "m-aliyun-cn-backup": ("aliyun", "LTAI5tNudgeDevBackup"),
        "twilio": ("twilio", "AC00000000000000000000000000000dev"),
    }


class Captured:
    """A transport that records each request and answers 503 (the adapter's answer is not the point)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(503, json={})


async def sent_request(config: RouteConfig, *, status_callback: str | None = None) -> httpx.Request:
    """The one request the adapter built from ``config`` makes for a send."""
    captured = Captured()
    async with httpx.AsyncClient(transport=httpx.MockTransport(captured)) as client:
        provider = build_provider(config, client, status_callback=status_callback)
        with contextlib.suppress(ProviderError):
            await provider.send(with_code(sms(US if config.provider == "twilio" else CN), config.provider))
    [request] = captured.requests
    return request


async def test_build_provider_aliyun_takes_the_routes_region_and_signing() -> None:
    """An RPC route signs in the query for its own region; an ACS3 route signs in the header."""
    rpc = RouteConfig(
        name="a", provider="aliyun", base_url="https://sms.example/ali/", access_key_id="AK1",
        access_key_secret=SecretStr("s1"), region="cn-shanghai",
    )  # fmt: skip
    request = await sent_request(rpc)
    query = parse_qs(request.url.query.decode())
    assert (request.url.host, request.url.path) == ("sms.example", "/ali/")
    assert (query["AccessKeyId"], query["RegionId"], "Signature" in query) == (["AK1"], ["cn-shanghai"], True)
    acs3 = rpc.model_copy(update={"aliyun_signing": "acs3"})
    authorization = (await sent_request(acs3)).headers["authorization"]
    assert authorization.startswith("ACS3-HMAC-SHA256 Credential=AK1,")


async def test_build_provider_twilio_uses_the_routes_account_and_messaging_service() -> None:
    """A Twilio route posts to its account's Messages resource, through its messaging service."""
    config = RouteConfig(
        name="t", provider="twilio", base_url="https://sms.example/tw", account_sid="AC1",
        auth_token=SecretStr("tok"), messaging_service_sid="MG1",
    )  # fmt: skip
    request = await sent_request(config)
    assert request.url.path == "/tw/2010-04-01/Accounts/AC1/Messages.json"
    assert parse_qs(request.content.decode())["MessagingServiceSid"] == ["MG1"]
    assert request.headers["authorization"] == "Basic QUMxOnRvaw=="  # base64 of AC1:tok


async def test_build_provider_tencent_uses_the_routes_app_and_key() -> None:
    """A Tencent route sends for its SDK app, signed with its SecretId."""
    config = RouteConfig(
        name="c", provider="tencent", base_url="https://sms.example/tc", secret_id="AKID1",
        secret_key=SecretStr("k1"), sdk_app_id="1400009999",
    )  # fmt: skip
    request = await sent_request(config)
    assert request.url.host == "sms.example"
    assert json.loads(request.content)["SmsSdkAppId"] == "1400009999"
    assert request.headers["authorization"].startswith("TC3-HMAC-SHA256 Credential=AKID1/")


async def test_build_router_gives_simulator_routes_the_receipt_callback() -> None:
    """A route on the simulator's own API asks for receipts at the worker's callback."""
    captured = Captured()
    config = RouteConfig(name="s", provider="simulator", base_url="https://sim.example")
    async with httpx.AsyncClient(transport=httpx.MockTransport(captured)) as client:
        router = build_router(
            [config], client, simulator_callback="https://n.example/v1/webhooks/simulator/status"
        )
        with contextlib.suppress(ProviderError):
            await router.by_name["s"].provider.send(sms(CN))
    [request] = captured.requests
    assert str(request.url) == "https://sim.example/v1/messages"
    assert json.loads(request.content)["status_callback"] == "https://n.example/v1/webhooks/simulator/status"
