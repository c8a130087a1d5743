"""``nudge codec``: keys for the payload codec that seals Temporal history (``nudge.codec``)."""

from __future__ import annotations

from typing import Annotated

import typer

from nudge.errors import ConfigurationError
from starter.cli.common import err, fail

codec_app = typer.Typer(help="Keys that seal Temporal payloads (AES-256-GCM).", no_args_is_help=True)


@codec_app.command("new-key")
def new_key(
    key_id: Annotated[
        str, typer.Argument(metavar="ID", help="The key's id, e.g. 2026-12: payloads name it.")
    ],
) -> None:
    """Print a new key as NUDGE_CODEC_KEYS takes it (id:base64 of 32 random bytes).

    Rotate by listing it first and keeping the old ones after it:
    [bold]NUDGE_CODEC_KEYS="$(nudge codec new-key 2027-01),$NUDGE_CODEC_KEYS"[/]. Drop an old key
    only once no history sealed with it is still kept.
    """
    from nudge.codec import new_key as make

    try:
        typer.echo(make(key_id))
    except ConfigurationError as exc:
        raise fail(str(exc), code=2) from exc
    err.print("[yellow]keep it secret, and keep it as long as any history it seals is kept[/]")
