"""Request signing for the three providers, shared by the adapters, the gateway and the simulator.

Pure functions over bytes and strings, so each one is checked against the providers' published
test vectors (``tests/unit/test_signing.py``):

- Aliyun RPC (v2): HMAC-SHA1 over the percent-encoded, sorted query (``aliyun_rpc_signature``).
- Aliyun ACS3-HMAC-SHA256 (v3): a canonical request over method, query, headers and payload
  (``aliyun_acs3_authorization``).
- Twilio: ``X-Twilio-Signature``, HMAC-SHA1 over the URL and the sorted form parameters
  (``twilio_signature`` / ``twilio_signature_valid``).
- Tencent Cloud TC3-HMAC-SHA256 (``tencent_tc3_authorization``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit, urlunsplit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun wants it: only ``A-Z a-z 0-9 - _ . ~`` stay as they are."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    """``k=v`` pairs, sorted by key, both percent-encoded, joined by ``&``."""
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


# ----- Aliyun ---------------------------------------------------------------------------------


def aliyun_rpc_string_to_sign(params: Mapping[str, str], *, method: str = "POST") -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def aliyun_rpc_signature(params: Mapping[str, str], secret: str, *, method: str = "POST") -> str:
    """The ``Signature`` parameter for Aliyun's RPC (v2) scheme. ``params`` excludes ``Signature``."""
    string_to_sign = aliyun_rpc_string_to_sign(params, method=method)
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


ACS3 = "ACS3-HMAC-SHA256"


def _acs3_signed_headers(
    headers: Mapping[str, str], names: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """Headers ACS3 signs, names lowercased: ``names`` when given (a server verifies over what the
    request's ``SignedHeaders`` lists: the official SDK signs ``accept`` and ``user-agent`` too),
    else ``host``, ``content-type`` and every ``x-acs-*`` (what a client must sign).

    Headers that differ only in case are joined with ``,`` in sorted-value order, as the SDK does.
    """
    wanted = {name.lower() for name in names} if names is not None else None
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if wanted is not None:
            if lower in wanted:
                merged.setdefault(lower, []).append(value.strip())
        elif lower in ("host", "content-type") or lower.startswith("x-acs-"):
            merged.setdefault(lower, []).append(value.strip())
    for missing in (wanted or set()) - merged.keys():  # listed but not sent: signed as empty
        merged[missing] = [""]
    return [(name, ",".join(sorted(values))) for name, values in sorted(merged.items())]


def aliyun_acs3_canonical_request(
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    signed_headers: Sequence[str] | None = None,
) -> tuple[str, str]:
    """The canonical request and its ``SignedHeaders`` list (``signed_headers``: exactly these)."""
    signed = _acs3_signed_headers(headers, signed_headers)
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in signed)
    signed_names = ";".join(name for name, _ in signed)
    request = "\n".join(
        [method.upper(), path or "/", canonical_query(query), canonical_headers, signed_names, payload_sha256]
    )
    return request, signed_names


def aliyun_acs3_authorization(
    *,
    access_key_id: str,
    secret: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    signed_headers: Sequence[str] | None = None,
) -> str:
    """The ``Authorization`` header value for Aliyun's ACS3-HMAC-SHA256 (v3) scheme; a verifier
    passes the request's ``SignedHeaders`` as ``signed_headers``."""
    request, signed_names = aliyun_acs3_canonical_request(
        method=method,
        path=path,
        query=query,
        headers=headers,
        payload_sha256=payload_sha256,
        signed_headers=signed_headers,
    )
    string_to_sign = f"{ACS3}\n{hashlib.sha256(request.encode()).hexdigest()}"
    signature = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ACS3} Credential={access_key_id},SignedHeaders={signed_names},Signature={signature}"


def _parse_authorization(value: str, scheme: str) -> dict[str, str]:
    """Split ``<scheme> Credential=..,SignedHeaders=..,Signature=..`` into its fields."""
    given, _, rest = value.partition(" ")
    if given != scheme:
        raise ValueError(f"not a {scheme} authorization")
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise ValueError("authorization lacks Credential, SignedHeaders or Signature")
    return fields


def parse_acs3_authorization(value: str) -> dict[str, str]:
    """The fields of an ACS3-HMAC-SHA256 ``Authorization`` header."""
    return _parse_authorization(value, ACS3)


# ----- Twilio ---------------------------------------------------------------------------------


def twilio_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """``X-Twilio-Signature`` for a form POST to ``url``.

    The data is the URL followed by every parameter name and value, sorted by name; a name that
    repeats contributes each of its distinct values in sorted order.
    """
    by_name: dict[str, list[str]] = {}
    for name, value in params:
        by_name.setdefault(name, []).append(value)
    # Twilio's own validator drops a value repeated under the same name (``sorted(set(values))``).
    data = url + "".join(name + value for name in sorted(by_name) for value in sorted(set(by_name[name])))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, plus with and without its scheme's default port (Twilio signs either)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    variants = [url]
    if default is not None and parts.port in (None, default):
        userinfo = parts.netloc.rpartition("@")[0]
        prefix = f"{userinfo}@" if userinfo else ""
        for netloc in (f"{prefix}{host}", f"{prefix}{host}:{default}"):
            variant = urlunsplit(parts._replace(netloc=netloc))
            if variant not in variants:
                variants.append(variant)
    return variants


def twilio_signature_valid(
    url: str, params: Iterable[tuple[str, str]], signature: str | None, auth_token: str
) -> bool:
    """Check ``X-Twilio-Signature`` in constant time, trying the URL with and without its default port."""
    if not signature:
        return False
    pairs = list(params)
    return any(
        hmac.compare_digest(twilio_signature(variant, pairs, auth_token), signature)
        for variant in _port_variants(url)
    )


# ----- Tencent Cloud --------------------------------------------------------------------------

TC3 = "TC3-HMAC-SHA256"


def _hmac256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tencent_tc3_signature(
    *,
    secret_key: str,
    service: str,
    host: str,
    timestamp: int,
    payload: bytes,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    """The hex TC3-HMAC-SHA256 signature of a ``POST /`` with signed headers content-type and host."""
    canonical_request = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = f"{TC3}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    secret_date = _hmac256(f"TC3{secret_key}".encode(), date)
    secret_service = _hmac256(secret_date, service)
    secret_signing = _hmac256(secret_service, "tc3_request")
    return hmac.new(secret_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()


def tencent_tc3_authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    timestamp: int,
    payload: bytes,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    """The ``Authorization`` header value for a Tencent Cloud API 3.0 ``POST /``."""
    signature = tencent_tc3_signature(
        secret_key=secret_key,
        service=service,
        host=host,
        timestamp=timestamp,
        payload=payload,
        content_type=content_type,
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    return (
        f"{TC3} Credential={secret_id}/{date}/{service}/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


def parse_tc3_authorization(value: str) -> dict[str, str]:
    """The fields of a TC3-HMAC-SHA256 ``Authorization`` header."""
    return _parse_authorization(value, TC3)
