"""The payload codec: every Temporal payload sealed with AES-GCM, so that history holds no phone
number, name or message body in plain text.

A sealed payload's metadata says ``encoding: binary/encrypted`` and ``encryption-key-id: <id>``;
its data is a 12-byte random nonce, then the AES-256-GCM ciphertext of the whole original payload
(metadata and data), with the key id as associated data, so a payload cannot be passed off as
sealed under another key. Rotation: new payloads use the newest key (the first listed), every
listed key still opens what it sealed, and a payload whose key is not listed fails loudly
(``MissingCodecKey``) instead of reaching a workflow as garbage. A payload that was never sealed
(history recorded before the codec) passes through as it is.

Keys are ``NUDGE_CODEC_KEYS``: ``id:base64`` pairs, newest first, comma-separated, each key 32
random bytes (``nudge codec new-key`` prints one).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from nudge.errors import ConfigurationError, NudgeError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class CorruptPayload(NudgeError):
    """A sealed payload that does not open: altered, truncated, or relabelled with another key."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"a payload sealed with codec key {key_id!r} does not open: it was altered or truncated"
        )
        self.key_id = key_id


class MissingCodecKey(NudgeError):
    """A payload was sealed with a key this process does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"a payload is sealed with codec key {key_id!r}, which NUDGE_CODEC_KEYS does not hold; "
            "add it back (rotation keeps old keys listed after the new one)"
        )
        self.key_id = key_id


def new_key(key_id: str) -> str:
    """A fresh key in the form ``NUDGE_CODEC_KEYS`` takes: ``id:base64`` of 32 random bytes."""
    if not _ID.fullmatch(key_id):
        raise ConfigurationError(f"codec key id {key_id!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def parse_keys(text: str) -> dict[str, bytes]:
    """``id:base64,id:base64`` (newest first) -> {id: key}, in that order.

    Raises:
        ConfigurationError: a malformed entry, a key that is not 32 bytes, or a repeated id.
    """
    keys: dict[str, bytes] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep or not _ID.fullmatch(key_id):
            raise ConfigurationError(f"NUDGE_CODEC_KEYS: {key_id!r} is not `id:base64` with a plain id")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(f"NUDGE_CODEC_KEYS: key {key_id!r} is not base64") from exc
        if len(key) != 32:
            raise ConfigurationError(
                f"NUDGE_CODEC_KEYS: key {key_id!r} has {len(key)} bytes, not 32 (AES-256)"
            )
        if key_id in keys:
            raise ConfigurationError(f"NUDGE_CODEC_KEYS: key id {key_id!r} is listed twice")
        keys[key_id] = key
    return keys


class EncryptionCodec(PayloadCodec):
    """Seals payloads with the newest key; opens them with whichever key sealed them.

    Args:
        keys: key id -> 32-byte key, newest first.
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ConfigurationError("the payload codec needs at least one key (NUDGE_CODEC_KEYS)")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = next(iter(keys))

    @property
    def current_key_id(self) -> str:
        return self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE)
        key_id = self._current
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # never sealed: recorded before the codec
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise MissingCodecKey(key_id)
        if len(payload.data) <= _NONCE:
            raise CorruptPayload(key_id)
        nonce, sealed = payload.data[:_NONCE], payload.data[_NONCE:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag as exc:
            raise CorruptPayload(key_id) from exc
        opened = Payload()
        opened.ParseFromString(plain)
        return opened
