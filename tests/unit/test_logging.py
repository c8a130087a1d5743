from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from nudge.logging import configure_logging, get_logger, mask_phone_numbers


def test_mask_phone_numbers_masks_string_values() -> None:
    """The processor masks numbers in every string value and leaves other values alone."""
    processors: list[Any] = [mask_phone_numbers]
    with capture_logs(processors=processors) as logs:
        get_logger("test").info(
            "message_sent", to="+8613800138000", note="call 138 0013 8000", segments=12345678
        )
    assert logs == [
        {
            "event": "message_sent",
            "to": "+86*******8000",
            "note": "call *******8000",
            "segments": 12345678,
            "log_level": "info",
        }
    ]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_masks_phone_numbers_in_rendered_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the real pipeline, structlog and stdlib log lines reach stderr with numbers masked."""
    configure_logging(level="INFO", json=True)
    get_logger("nudge.test").info("message_sent", to="+8613800138000")
    logging.getLogger("third.party").warning("retrying +1 650 253 0000")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line.get("to")) for line in lines] == [
        ("message_sent", "+86*******8000"),
        ("retrying +16*****0000", None),
    ]
    assert "13800138000" not in json.dumps(lines)


def test_json_logs_keep_timestamps_and_render_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    """The timestamp is not mistaken for a phone number, and a stdlib exception is logged as text."""
    configure_logging(level="INFO", json=True)
    try:
        raise RuntimeError("boom for +8613800138000")
    except RuntimeError:
        logging.getLogger("tests.foreign").exception("Exception in ASGI application")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["timestamp"][:4].isdigit() and "*" not in line["timestamp"]
    assert "RuntimeError: boom for +86*******8000" in line["exception"]
