"""The payload codec (``nudge.codec``): AES-GCM sealing, its wire layout, rotation and refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

from nudge.codec import CorruptPayload, EncryptionCodec, MissingCodecKey, new_key, parse_keys
from nudge.errors import ConfigurationError

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(32, 64))).decode()
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"name":"Ana Li","phone":"+8613800138000"}')


async def test_sealed_payload_hides_the_data_and_opens_back() -> None:
    """A sealed payload carries neither the name nor the phone, names its key, and opens to the
    original payload, metadata included."""
    codec = EncryptionCodec(parse_keys(K1))
    [sealed] = await codec.encode([PLAIN])
    assert b"Ana" not in sealed.data and b"13800138000" not in sealed.data
    assert dict(sealed.metadata) == {"encoding": b"binary/encrypted", "encryption-key-id": b"k1"}
    assert await codec.decode([sealed]) == [PLAIN]


async def test_the_wire_layout_is_nonce_then_aes_gcm_with_the_key_id_as_associated_data() -> None:
    """Opened with the cryptography package directly, as the docstring describes it: 12-byte nonce,
    then AES-256-GCM of the serialised payload, associated data the key id."""
    [sealed] = await EncryptionCodec(parse_keys(K1)).encode([PLAIN])
    opened = AESGCM(bytes(range(32))).decrypt(sealed.data[:12], sealed.data[12:], b"k1")
    assert Payload.FromString(opened) == PLAIN


async def test_each_seal_uses_a_fresh_nonce() -> None:
    """The same payload sealed twice gives two different ciphertexts (a repeated nonce would break
    GCM)."""
    codec = EncryptionCodec(parse_keys(K1))
    first, second = await codec.encode([PLAIN, PLAIN])
    assert first.data[:12] != second.data[:12] and first.data != second.data


async def test_rotation_seals_with_the_newest_key_and_still_opens_the_old() -> None:
    """With k2 listed before k1: new payloads name k2; a payload k1 sealed still opens; a codec
    that holds only k2 refuses it, naming k1."""
    [old] = await EncryptionCodec(parse_keys(K1)).encode([PLAIN])
    rotated = EncryptionCodec(parse_keys(f"{K2},{K1}"))
    [new] = await rotated.encode([PLAIN])
    assert new.metadata["encryption-key-id"] == b"k2"
    assert await rotated.decode([old, new]) == [PLAIN, PLAIN]
    with pytest.raises(MissingCodecKey, match="'k1'"):
        await EncryptionCodec(parse_keys(K2)).decode([old])


async def test_a_tampered_or_relabelled_payload_is_refused() -> None:
    """A flipped ciphertext byte fails authentication; so does a payload relabelled with another
    key id that is listed (the key id is bound as associated data)."""
    codec = EncryptionCodec(parse_keys(f"{K1},{K2}"))
    [sealed] = await codec.encode([PLAIN])
    tampered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CorruptPayload):
        await codec.decode([tampered])
    with pytest.raises(CorruptPayload):
        await codec.decode([Payload(metadata=sealed.metadata, data=sealed.data[:8])])
    same_key = EncryptionCodec({"k1": bytes(range(32)), "k2": bytes(range(32))})
    [under_k1] = await same_key.encode([PLAIN])
    relabelled = Payload(metadata={**under_k1.metadata, "encryption-key-id": b"k2"}, data=under_k1.data)
    with pytest.raises(CorruptPayload):
        await same_key.decode([relabelled])


async def test_a_payload_that_was_never_sealed_passes_through() -> None:
    """History recorded before the codec still decodes: a plain payload is left as it is."""
    assert await EncryptionCodec(parse_keys(K1)).decode([PLAIN]) == [PLAIN]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("k1", "is not `id:base64`"),
        ("k 1:" + K1.split(":")[1], "plain id"),
        ("k1:not base64!", "is not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "has 5 bytes, not 32"),
        (f"{K1},{K1}", "listed twice"),
    ],
)
def test_parse_keys_refuses_malformed_keys(text: str, why: str) -> None:
    """Each malformed NUDGE_CODEC_KEYS is refused at start with what is wrong."""
    with pytest.raises(ConfigurationError, match=why):
        parse_keys(text)


def test_new_key_is_32_random_bytes_under_its_id() -> None:
    """``nudge codec new-key`` output parses, is 32 bytes, and differs each time."""
    first, second = parse_keys(new_key("a")), parse_keys(new_key("a"))
    assert len(first["a"]) == 32 and first != second
    assert list(parse_keys(f"{new_key('b')}, {new_key('a')}")) == ["b", "a"]  # newest first, in order
    with pytest.raises(ConfigurationError):
        EncryptionCodec({})
