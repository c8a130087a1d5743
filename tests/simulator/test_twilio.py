"""Twilio at /twilio/2010-04-01/Accounts/{sid}/: create, list and fetch messages over loopback."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.simulator.conftest import Sim
from tests.simulator.signed import TWILIO_FROM, TWILIO_SID, TWILIO_TOKEN, twilio_send

MESSAGES = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


async def test_twilio_send_returns_201_and_records_entry(sim: Sim) -> None:
    """A valid create answers 201 with Twilio's message resource and adds one ledger entry."""
    response = await twilio_send(sim.http, body="Hi there")
    assert response.status_code == 201
    message = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert (message["status"], message["direction"], message["num_segments"]) == (
        "queued",
        "outbound-api",
        "1",
    )
    assert (message["to"], message["from"], message["account_sid"]) == (
        "+14155550100",
        TWILIO_FROM,
        TWILIO_SID,
    )
    assert message["error_code"] is None and message["price"] is None
    assert message["date_created"].endswith("+0000")
    assert message["uri"] == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{message['sid']}.json"
    [entry] = await sim.ledger(provider="twilio")
    assert (entry["provider_id"], entry["client_ref"], entry["signature"]) == (
        message["sid"],
        "",
        TWILIO_FROM,
    )


async def test_twilio_send_counts_ucs2_segments(sim: Sim) -> None:
    """A body with one non-GSM character is counted in UCS-2 parts of 67."""
    response = await twilio_send(sim.http, body="ü€" + "你" * 70)
    assert response.json()["num_segments"] == "2"


async def test_twilio_send_via_messaging_service_uses_an_account_number(sim: Sim) -> None:
    """With only a MessagingServiceSid the message goes out from one of the account's numbers."""
    service = "MG" + "0" * 32
    response = await sim.http.post(
        MESSAGES,
        data={"To": "+14155550100", "Body": "hi", "MessagingServiceSid": service},
        auth=(TWILIO_SID, TWILIO_TOKEN),
    )
    assert response.status_code == 201
    assert (response.json()["from"], response.json()["messaging_service_sid"]) == (TWILIO_FROM, service)


OTHER_SID = "AC" + "1" * 32


@pytest.mark.parametrize(
    ("path_sid", "auth"),
    [
        (TWILIO_SID, None),
        (TWILIO_SID, (TWILIO_SID, "wrong-token")),
        (TWILIO_SID, (OTHER_SID, TWILIO_TOKEN)),
        (OTHER_SID, (TWILIO_SID, TWILIO_TOKEN)),
    ],
    ids=["none", "token", "user", "path"],
)
async def test_twilio_bad_credentials_are_20003(
    sim: Sim, path_sid: str, auth: tuple[str, str] | None
) -> None:
    """Missing or wrong Basic credentials, or another account's URL, get 401 code 20003 and no send."""
    response = await sim.http.post(
        f"/twilio/2010-04-01/Accounts/{path_sid}/Messages.json",
        data={"To": "+14155550100", "From": TWILIO_FROM, "Body": "x"},
        auth=httpx.BasicAuth(*auth) if auth else httpx.USE_CLIENT_DEFAULT,
    )
    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert await sim.ledger() == []


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "5550100"}, 21211),
        ({"From": ""}, 21603),
        ({"From": "+14155559999"}, 21606),
        ({"Body": ""}, 21602),
        ({"Body": "x" * 1601}, 21617),
    ],
)
async def test_twilio_invalid_requests_get_twilio_codes(sim: Sim, form: dict[str, str], code: int) -> None:
    """Bad To, From or Body get HTTP 400 with Twilio's numeric code and no ledger entry."""
    request = {"To": "+14155550100", "From": TWILIO_FROM, "Body": "x", **form}
    response = await sim.http.post(MESSAGES, data=request, auth=(TWILIO_SID, TWILIO_TOKEN))
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["status"]) == (code, 400)
    assert response.json()["more_info"].endswith(f"/{code}")
    assert await sim.ledger() == []


async def test_twilio_list_filters_newest_first(sim: Sim) -> None:
    """GET Messages.json lists the account's messages newest first, filtered by To and DateSent."""
    first = (await twilio_send(sim.http, "+14155550100", body="one")).json()
    await twilio_send(sim.http, "+14155550199", body="other")
    second = (await twilio_send(sim.http, "+14155550100", body="two")).json()
    day = first["date_created"]
    response = await sim.http.get(
        MESSAGES,
        params={"To": "+14155550100", "DateSent>": "2000-01-01", "PageSize": "20"},
        auth=(TWILIO_SID, TWILIO_TOKEN),
    )
    page = response.json()
    assert [m["sid"] for m in page["messages"]] == [second["sid"], first["sid"]], day
    assert (page["page"], page["page_size"], page["next_page_uri"]) == (0, 20, None)
    later = await sim.http.get(MESSAGES, params={"DateSent>": "2999-01-01"}, auth=(TWILIO_SID, TWILIO_TOKEN))
    assert later.json()["messages"] == []


async def test_twilio_fetch_finds_message_and_404s_unknown_sid(sim: Sim) -> None:
    """GET Messages/{sid}.json returns the message, and 20404 for a sid it never issued."""
    sent = (await twilio_send(sim.http)).json()
    base = f"/twilio/2010-04-01/Accounts/{TWILIO_SID}/Messages"
    found = await sim.http.get(f"{base}/{sent['sid']}.json", auth=(TWILIO_SID, TWILIO_TOKEN))
    assert (found.status_code, found.json()["body"]) == (200, "Your order shipped")
    missing = await sim.http.get(f"{base}/SM{'0' * 32}.json", auth=(TWILIO_SID, TWILIO_TOKEN))
    assert (missing.status_code, missing.json()["code"]) == (404, 20404)
