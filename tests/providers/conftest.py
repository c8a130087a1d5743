from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from activities.providers.aliyun import AliyunProvider
from activities.providers.base import OutboundSms, Provider
from activities.providers.tencent import TencentProvider
from activities.providers.twilio import TwilioProvider
from nudge.routes import (
    DEV_ALIYUN_KEYS,
    DEV_TENCENT_APP_ID,
    DEV_TENCENT_KEYS,
    DEV_TWILIO_ACCOUNTS,
    DEV_TWILIO_NUMBER,
)
from nudge.templates import get_template

(ALIYUN_KEY, ALIYUN_SECRET), (BACKUP_KEY, BACKUP_SECRET) = DEV_ALIYUN_KEYS.items()
((TWILIO_SID, TWILIO_TOKEN),) = DEV_TWILIO_ACCOUNTS.items()
((TENCENT_ID, TENCENT_KEY),) = DEV_TENCENT_KEYS.items()
CN = "+8613800138000"
US = "+14155550100"


def sms(to: str, *, message_id: str = "m-1", template: str = "payment_success", **params: str) -> OutboundSms:
    """A rendered message as the send gate hands it to an adapter."""
    tpl = get_template(template)
    values = {"order_id": "o-1", "amount": "42.00", **params}
    return OutboundSms(
        message_id=message_id,
        to=to,
        body=tpl.render(values),
        signature=DEV_TWILIO_NUMBER if to.startswith("+1") else "Nudge",
        template_code=None,
        template_params={name: values[name] for name in tpl.ordered_variables},
    )


def with_code(message: OutboundSms, provider: str) -> OutboundSms:
    code = get_template("payment_success").provider_codes.get(provider)
    return message.model_copy(update={"template_code": code})


ProviderFactory = Callable[..., Provider]


def aliyun(http: httpx.AsyncClient, carrier: str, **kw: Any) -> AliyunProvider:
    fields = {"access_key_id": ALIYUN_KEY, "access_key_secret": ALIYUN_SECRET} | kw
    return AliyunProvider(http, base_url=f"{carrier}/aliyun", **fields)


def twilio(http: httpx.AsyncClient, carrier: str, **kw: Any) -> TwilioProvider:
    fields = {"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN} | kw
    return TwilioProvider(http, base_url=f"{carrier}/twilio", **fields)


def tencent(http: httpx.AsyncClient, carrier: str, **kw: Any) -> TencentProvider:
    fields = {"secret_id": TENCENT_ID, "secret_key": TENCENT_KEY, "sdk_app_id": DEV_TENCENT_APP_ID} | kw
    return TencentProvider(http, base_url=f"{carrier}/tencent", **fields)
