"""structlog set-up: JSON when not on a TTY, phone numbers masked everywhere."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from nudge.phone import mask_in_text


def mask_phone_numbers(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Processor: mask every phone number in string values before anything is written."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = mask_in_text(value)
    return event_dict


def configure_logging(*, level: str = "INFO", json: bool | None = None) -> None:
    """Route structlog and stdlib logging through one pipeline."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    if as_json:
        # Tracebacks (ours and uvicorn's) as text, so they are masked too and readable in the file.
        shared.append(structlog.processors.format_exc_info)
    # Mask before stamping the time: a timestamp's digits look like a phone number.
    shared += [mask_phone_numbers, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiosqlite", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
