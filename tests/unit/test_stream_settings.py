"""``NUDGE_STREAM_WEBHOOKS``: parsed from JSON, refused clearly when a sink cannot work, and its
secrets never shown."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nudge.errors import ConfigurationError
from nudge.settings import load_settings
from nudge.sinks import EventKind
from nudge.store import create_engine, session_factory


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NUDGE_* variable or .env file from the developer's machine leaks into these tests."""
    for name in [name for name in os.environ if name.startswith("NUDGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


HOOK = {"name": "crm", "url": "https://crm.example.com/nudge?token=abc", "secret": "s3cret-0123456789abc"}


def test_stream_webhooks_parse_from_json_with_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink gets no personal data and every kind unless it says otherwise; its secret is hidden."""
    other = HOOK | {"name": "bi", "include_pii": True, "kinds": ["clicked", "converted"]}
    monkeypatch.setenv("NUDGE_STREAM_WEBHOOKS", json.dumps([HOOK, other]))
    settings = load_settings()
    crm, bi = settings.stream_sinks
    assert (crm.name, crm.include_pii, crm.kinds) == ("crm", False, None)
    assert (bi.include_pii, bi.kinds) == (True, {EventKind.CLICKED, EventKind.CONVERTED})
    assert crm.wants(EventKind.SENT) and not bi.wants(EventKind.SENT)
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())


def test_stream_webhooks_without_a_variable_mean_no_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset or empty: no sink, so nothing is recorded for one."""
    monkeypatch.setenv("NUDGE_STREAM_WEBHOOKS", "")
    assert load_settings().stream_sinks == []


@pytest.mark.parametrize(
    ("sinks", "problem"),
    [
        ([HOOK | {"secret": "short"}], r"NUDGE_STREAM_WEBHOOKS\[0\]\[secret\]: .*at least 16 characters"),
        ([HOOK | {"url": "crm.example.com"}], r"NUDGE_STREAM_WEBHOOKS\[0\]\[url\]: .*http:// or https://"),
        ([HOOK | {"kinds": ["bounced"]}], r"NUDGE_STREAM_WEBHOOKS\[0\]\[kinds\]"),
        ([HOOK | {"colour": "red"}], r"NUDGE_STREAM_WEBHOOKS\[0\]\[colour\]"),
        ([HOOK, HOOK], r"NUDGE_STREAM_WEBHOOKS: .*crm appear more than once"),
        ([HOOK | {"url": "http://[::1/h?token=abc"}], r"NUDGE_STREAM_WEBHOOKS\[0\]\[url\]: .*malformed"),
        ([HOOK | {"url": "http://crm:notaport/h"}], r"NUDGE_STREAM_WEBHOOKS\[0\]\[url\]: .*malformed"),
        ([HOOK | {"url": "https:///h"}], r"NUDGE_STREAM_WEBHOOKS\[0\]\[url\]: .*no valid host"),
    ],
    ids=["short-secret", "not-http", "unknown-kind", "unknown-field", "same-name", "ipv6", "port", "no-host"],
)
def test_stream_webhooks_refused_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, sinks: list[dict[str, object]], problem: str
) -> None:
    """A sink that cannot work stops the process with the variable and the field named."""
    monkeypatch.setenv("NUDGE_STREAM_WEBHOOKS", json.dumps(sinks))
    with pytest.raises(ConfigurationError, match=problem) as refused:
        load_settings()
    assert "s3cret" not in str(refused.value)


def test_stream_broker_parses_from_json_and_keeps_its_url_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NUDGE_STREAM_BROKER`` is one sink more, after the webhooks; its URL (which may hold a
    password) is never shown."""
    monkeypatch.setenv("NUDGE_STREAM_WEBHOOKS", json.dumps([HOOK]))
    monkeypatch.setenv("NUDGE_STREAM_BROKER", json.dumps({"url": "redis://:pw-9f8e@redis.internal:6379/0"}))
    settings = load_settings()
    assert [sink.name for sink in settings.stream_sinks] == ["crm", "broker"]
    assert settings.stream_broker is not None and settings.stream_broker.stream == "nudge:events"
    assert "pw-9f8e" not in repr(settings)


@pytest.mark.parametrize(
    ("broker", "problem"),
    [
        ({"url": "http://redis:6379"}, r"NUDGE_STREAM_BROKER\[url\]: .*redis://"),
        ({"name": "crm", "url": "redis://redis:6379"}, r"NUDGE_STREAM_BROKER: .*named 'crm' like a webhook"),
        ({"url": "redis://:pw-9f8e@redis:notaport/0"}, r"NUDGE_STREAM_BROKER\[url\]: .*malformed"),
        (
            {"url": "redis://:pw-9f8e@redis:6379/zero"},
            r"NUDGE_STREAM_BROKER\[url\]: .*database must be a number",
        ),
        ({"url": "redis:///0"}, r"NUDGE_STREAM_BROKER\[url\]: .*no host"),
        ({"url": "unix://"}, r"NUDGE_STREAM_BROKER\[url\]: .*socket's path"),
    ],
    ids=["not-redis", "a-webhooks-name", "port", "database", "no-host", "no-socket"],
)
def test_stream_broker_refused_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, broker: dict[str, str], problem: str
) -> None:
    """A broker that cannot work stops the process with the variable named."""
    monkeypatch.setenv("NUDGE_STREAM_WEBHOOKS", json.dumps([HOOK]))
    monkeypatch.setenv("NUDGE_STREAM_BROKER", json.dumps(broker))
    with pytest.raises(ConfigurationError, match=problem) as refused:
        load_settings()
    assert "pw-9f8e" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis.internal:6379/0",
        "rediss://:pw@redis.internal/1",
        "redis://[::1]:6379",
        "unix:///r.sock",
    ],
)
async def test_a_broker_url_that_validates_makes_a_dispatcher(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """What the validator takes, the Redis client takes too: the gateway starts."""
    from starter.stream import StreamDispatcher

    monkeypatch.setenv("NUDGE_STREAM_BROKER", json.dumps({"url": url}))
    settings = load_settings()
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    dispatcher = StreamDispatcher.from_settings(settings, session_factory(engine))
    assert dispatcher is not None
    await dispatcher.aclose()
    await engine.dispose()
