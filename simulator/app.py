"""The carrier simulator: the three providers' real APIs, a native API, a ledger and customers.

Mounted APIs (each provider's base URL is ``<simulator>/<provider>``):

- ``/aliyun/`` Dysms 2017-05-25 (``simulator.aliyun``)
- ``/twilio/2010-04-01/Accounts/{AccountSid}/Messages.json`` (``simulator.twilio``)
- ``/tencent/`` SMS 2021-01-11 (``simulator.tencent``)
- ``/v1/messages`` the native API (``simulator.native``)
- ``/_sim/*`` and ``/healthz`` for tests and the demo (``simulator.control``)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulator import aliyun, control, native, tencent, twilio
from simulator.carrier import Carrier
from simulator.codes import CarrierError
from simulator.config import AliyunAccount, ExtraTemplate, Fault, SimConfig, TencentAccount, TwilioAccount
from simulator.ledger import LedgerEntry

__all__ = [
    "AliyunAccount",
    "Carrier",
    "ExtraTemplate",
    "Fault",
    "LedgerEntry",
    "SimConfig",
    "TencentAccount",
    "TwilioAccount",
    "create_app",
]


async def _carrier_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CarrierError)
    return exc.response()


def create_app(config: SimConfig | None = None) -> FastAPI:
    """The simulator app; its ``Carrier`` is ``app.state.carrier``."""
    carrier = Carrier(config or SimConfig())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await carrier.close()

    app = FastAPI(title="Nudge carrier simulator", version="0.2.0", lifespan=lifespan)
    app.state.carrier = carrier
    app.add_exception_handler(CarrierError, _carrier_error)
    for module in (native, control, aliyun, twilio, tencent):
        app.include_router(module.router)
    return app
