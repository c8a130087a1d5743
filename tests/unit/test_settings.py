from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from nudge.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NUDGE_* variable or .env file from the developer's machine leaks into these tests."""
    for name in ("NUDGE_DATABASE_URL", "NUDGE_STATE_DIR", "NUDGE_JOURNEY_OVERRIDES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u:p@db:5432/nudge", "postgresql+psycopg://u:p@db:5432/nudge"),
        ("postgres://u@db/nudge", "postgresql+psycopg://u@db/nudge"),
        ("sqlite:////srv/nudge.db", "sqlite+aiosqlite:////srv/nudge.db"),
        ("postgresql+asyncpg://u@db/nudge", "postgresql+asyncpg://u@db/nudge"),
    ],
)
def test_settings_database_url_gets_async_driver(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: str
) -> None:
    """A plain URL from NUDGE_DATABASE_URL gets the async driver; an explicit driver is kept."""
    monkeypatch.setenv("NUDGE_DATABASE_URL", raw)
    assert Settings().sqlalchemy_url == expected


def test_settings_default_database_is_sqlite_under_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no database URL, the store is SQLite at <state_dir>/nudge.db."""
    monkeypatch.setenv("NUDGE_STATE_DIR", str(tmp_path / "state"))
    assert Settings().sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'state' / 'nudge.db'}"


def test_settings_journey_overrides_parsed_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """NUDGE_JOURNEY_OVERRIDES is JSON: per-journey config dicts."""
    monkeypatch.setenv("NUDGE_JOURNEY_OVERRIDES", '{"cart_abandonment": {"first_wait": "PT5S"}}')
    assert Settings().journey_overrides == {"cart_abandonment": {"first_wait": "PT5S"}}


def test_settings_env_file_is_read(tmp_path: Path) -> None:
    """Settings also come from a .env file in the working directory."""
    (tmp_path / ".env").write_text("NUDGE_TASK_QUEUE=from-dotenv\nNUDGE_SEND_TIMEOUT=PT5S\n")
    settings = Settings()
    assert settings.task_queue == "from-dotenv"
    assert settings.send_timeout == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [("", "http://127.0.0.1:8000"), ("https://nudge.example.com/", "https://nudge.example.com")],
)
def test_settings_gateway_url_prefers_public_url(public_url: str, expected: str) -> None:
    """Short links and callbacks use the public URL when set, else host and port."""
    assert Settings(public_url=public_url).gateway_url == expected


def test_every_setting_is_documented_in_the_readme_as_generated() -> None:
    """The README's table is today's ``settings_table()``: a field added, renamed or re-documented
    without regenerating it (``python -m nudge.settings_readme --readme README.md``) fails here."""
    from nudge.settings import Settings
    from nudge.settings_readme import settings_table, with_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert with_table(readme) == readme, (
        "README's settings table is stale: python -m nudge.settings_readme --readme README.md"
    )
    undocumented = [
        name for name, field in Settings.model_fields.items() if not (field.description or "").strip()
    ]
    assert undocumented == []
    assert settings_table().count("\n| `NUDGE_") == len(Settings.model_fields)


def test_readme_names_no_setting_that_does_not_exist() -> None:
    """Every ``NUDGE_*`` variable the README mentions is a real setting (or the tests' own)."""
    import re

    from nudge.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    named = set(re.findall(r"NUDGE_([A-Z_]+[A-Z])", readme))
    assert named - {name.upper() for name in Settings.model_fields} - {"TEST_POSTGRES_URL"} == set()
