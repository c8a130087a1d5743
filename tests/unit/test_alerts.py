"""The alert webhook: retries with backoff, gives up cleanly, never blocks the caller."""

from __future__ import annotations

import asyncio

import httpx

from activities.compliance.alerts import AlertWebhook

ALERT = {"alert": "sends_paused", "scope": "template", "value": "cart_reminder"}
URL = "https://hooks.example.com/services/T0/B0/secret"


def webhook(handler: httpx.MockTransport, slept: list[float]) -> AlertWebhook:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = httpx.AsyncClient(transport=handler)
    return AlertWebhook(URL, client=client, attempts=4, backoff=0.5, sleep=sleep)


async def test_alert_webhook_retries_a_failing_webhook_with_backoff() -> None:
    """A 503, then a refused connection, then 200: delivered on the third try after 0.5 s and 1 s."""
    answers: list[httpx.Response | Exception] = [
        httpx.Response(503),
        httpx.ConnectError("refused"),
        httpx.Response(200),
    ]
    bodies: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    slept: list[float] = []
    task = webhook(httpx.MockTransport(handle), slept).post(ALERT)
    assert task is not None and await task is True
    assert slept == [0.5, 1.0]
    assert len(bodies) == 3 and b'"sends_paused"' in bodies[-1]


async def test_alert_webhook_gives_up_on_a_client_error_and_after_the_last_attempt() -> None:
    """A 400 is not retried; a webhook that keeps failing is tried 4 times, then given up."""
    slept: list[float] = []
    refused = webhook(httpx.MockTransport(lambda _: httpx.Response(400)), slept).post(ALERT)
    assert refused is not None and await refused is False and slept == []

    down = webhook(httpx.MockTransport(lambda _: httpx.Response(500)), slept).post(ALERT)
    assert down is not None and await down is False
    assert slept == [0.5, 1.0, 2.0]


async def test_alert_webhook_without_url_posts_nothing() -> None:
    """With NUDGE_ALERT_WEBHOOK_URL empty, an alert is only logged."""
    assert AlertWebhook("").post(ALERT) is None


async def test_alert_webhook_post_returns_at_once_and_aclose_cancels_what_hangs() -> None:
    """post() does not wait for the webhook; on shutdown a hanging post is cancelled after the grace."""
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(60)
        return httpx.Response(200)

    alerts = AlertWebhook(URL, client=httpx.AsyncClient(transport=httpx.MockTransport(hang)))
    task = alerts.post(ALERT)
    assert task is not None and not task.done()
    await started.wait()
    await alerts.aclose(grace=0.05)
    assert task.cancelled()
