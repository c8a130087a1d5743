"""The signing code reproduces the providers' published vectors, and ours."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from nudge.signing import (
    aliyun_acs3_authorization,
    aliyun_acs3_canonical_request,
    aliyun_rpc_signature,
    aliyun_rpc_string_to_sign,
    canonical_query,
    parse_acs3_authorization,
    parse_tc3_authorization,
    tencent_tc3_authorization,
    tencent_tc3_signature,
    twilio_signature,
    twilio_signature_valid,
)

A1_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]


def test_aliyun_rpc_signature_matches_documentation_example() -> None:
    """Vector A1: Aliyun's SendSms documentation example signs to zJDF+Lrzhj/ThnlvIToysFRq6t4=."""
    assert aliyun_rpc_string_to_sign(A1_PARAMS, method="GET").startswith(
        "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
    )
    assert aliyun_rpc_signature(A1_PARAMS, "testSecret", method="GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_rpc_signature_matches_sdk_unit_test() -> None:
    """Vector A2: the darabonba SDK's own test; without a method the string to sign is for POST."""
    params = {"query": "test", "body": "test"}
    assert aliyun_rpc_string_to_sign(params, method="GET") == "GET&%2F&body%3Dtest%26query%3Dtest"
    assert aliyun_rpc_string_to_sign(params) == "POST&%2F&body%3Dtest%26query%3Dtest"  # POST by default
    assert aliyun_rpc_signature(params, "secret", method="GET") == "XlUyV4sXjOuX5FnjUz9IF9tm5rU="


def test_aliyun_rpc_signature_depends_on_method_and_secret() -> None:
    """Changing the method or the secret changes the signature (the vector is not hard-coded)."""
    base = aliyun_rpc_signature(A1_PARAMS, "testSecret", method="GET")
    assert aliyun_rpc_signature(A1_PARAMS, "testSecret", method="POST") != base
    assert aliyun_rpc_signature(A1_PARAMS, "otherSecret", method="GET") != base


def test_canonical_query_encodes_like_the_sdk() -> None:
    """Space is %20, ~ stays, / * + are encoded (SDK vector)."""
    assert canonical_query({"test": " ~/*-+"}) == "test=%20~%2F%2A-%2B"


def test_aliyun_acs3_matches_documentation_example() -> None:
    """Vector A3: the v3 signature document's fixed RunInstances example."""
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-version": "2014-05-26",
    }
    query = {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", "RegionId": "cn-shanghai"}
    payload = headers["x-acs-content-sha256"]
    request, _ = aliyun_acs3_canonical_request(
        method="POST", path="/", query=query, headers=headers, payload_sha256=payload
    )
    assert (
        hashlib.sha256(request.encode()).hexdigest()
        == "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    authorization = aliyun_acs3_authorization(
        access_key_id="YourAccessKeyId",
        secret="YourAccessKeySecret",
        method="POST",
        path="/",
        query=query,
        headers=headers,
        payload_sha256=payload,
    )
    fields = parse_acs3_authorization(authorization)
    assert fields["Signature"] == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    assert fields["SignedHeaders"] == (
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    )


def test_aliyun_acs3_matches_sdk_unit_test_with_duplicate_headers() -> None:
    """Vector A4: the SDK test, where two x-acs-test headers differing in case are joined."""
    authorization = aliyun_acs3_authorization(
        access_key_id="acesskey",
        secret="secret",
        method="GET",
        path="",
        query={"test": "ok", "empty": ""},
        headers={"x-acs-test": "http", "x-acs-TEST": "https"},
        payload_sha256="55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
    )
    assert authorization == (
        "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,"
        "Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    )


def test_aliyun_acs3_sendsms_vector_computed_by_hand() -> None:
    """Our own vector: a SendSms POST, recomputed step by step with hashlib (not via nudge.signing).

    Headers that ACS3 does not sign (accept, user-agent) must not change the result.
    """
    body = (
        "PhoneNumbers=13800138000&SignName=Nudge&TemplateCode=SMS_1"
        "&TemplateParam=%7B%22name%22%3A%22Ada%22%7D"
    )
    body_hash = hashlib.sha256(body.encode()).hexdigest()
    headers = {
        "host": "dysmsapi.aliyuncs.com",
        "content-type": "application/x-www-form-urlencoded",
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
        "x-acs-date": "2026-11-25T08:00:00Z",
        "x-acs-signature-nonce": "nonce-1",
        "x-acs-content-sha256": body_hash,
    }
    canonical = "\n".join(
        [
            "POST",
            "/",
            "OutId=m%201",
            "content-type:application/x-www-form-urlencoded\nhost:dysmsapi.aliyuncs.com\n"
            "x-acs-action:SendSms\nx-acs-content-sha256:" + body_hash + "\nx-acs-date:2026-11-25T08:00:00Z\n"
            "x-acs-signature-nonce:nonce-1\nx-acs-version:2017-05-25\n",
            "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version",
            body_hash,
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(b"k3y", to_sign.encode(), hashlib.sha256).hexdigest()
    got = aliyun_acs3_authorization(
        access_key_id="AK",
        secret="k3y",
        method="POST",
        path="/",
        query={"OutId": "m 1"},
        headers={**headers, "accept": "application/json", "user-agent": "nudge"},
        payload_sha256=body_hash,
    )
    assert parse_acs3_authorization(got)["Signature"] == expected


def test_twilio_signature_matches_published_vector() -> None:
    """Twilio's request-validator example signs to RSOYDt4T1cUTdK1PDd93/VVr8B8=."""
    assert twilio_signature(TWILIO_URL, TWILIO_PARAMS, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature_valid(TWILIO_URL, TWILIO_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "12345")


def test_twilio_signature_port_variants() -> None:
    """A URL signed with :443 validates without it and vice versa; a custom port is kept."""
    assert twilio_signature("https://mycompany.com:443/myapp.php?foo=1&bar=2", TWILIO_PARAMS, "12345") == (
        "kvajT1Ptam85bY51eRf/AJRuM3w="
    )
    assert twilio_signature("http://mycompany.com:80/myapp.php?foo=1&bar=2", TWILIO_PARAMS, "12345") == (
        "0ZXoZLH/DfblKGATFgpif+LLRf4="
    )
    assert twilio_signature("http://mycompany.com:1234/myapp.php?foo=1&bar=2", TWILIO_PARAMS, "12345") == (
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
    )
    assert twilio_signature_valid(TWILIO_URL, TWILIO_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=", "12345")
    assert twilio_signature_valid(
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        TWILIO_PARAMS,
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        "12345",
    )
    assert not twilio_signature_valid(
        "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
        TWILIO_PARAMS,
        "0ZXoZLH/DfblKGATFgpif+LLRf4=",
        "12345",
    )


def test_twilio_signature_with_duplicate_keys() -> None:
    """Repeated names contribute every value, sorted: published vector plus our own."""
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature(TWILIO_URL, params, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    # Our own: order of arrival does not matter, and the data string is built as documented.
    shuffled = [("Digits", "1234"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Sid", "CA123")]
    assert twilio_signature(TWILIO_URL, shuffled, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    own = [("MediaUrl", "https://b.example/2"), ("Body", "hi"), ("MediaUrl", "https://a.example/1")]
    data = "https://nudge.example.com/v1/webhooks/twilio/inbound" + (
        "Bodyhi" + "MediaUrlhttps://a.example/1" + "MediaUrlhttps://b.example/2"
    )
    import base64

    expected = base64.b64encode(hmac.new(b"tok", data.encode(), hashlib.sha1).digest()).decode()
    assert twilio_signature("https://nudge.example.com/v1/webhooks/twilio/inbound", own, "tok") == expected


def test_twilio_signature_rejects_forgeries() -> None:
    """A changed parameter, a wrong token or a missing header fails validation."""
    good = twilio_signature(TWILIO_URL, TWILIO_PARAMS, "12345")
    tampered = [*TWILIO_PARAMS[:-1], ("To", "+18005550000")]
    assert not twilio_signature_valid(TWILIO_URL, tampered, good, "12345")
    assert not twilio_signature_valid(TWILIO_URL, TWILIO_PARAMS, good, "54321")
    assert not twilio_signature_valid(TWILIO_URL, TWILIO_PARAMS, None, "12345")


def test_twilio_json_body_vector() -> None:
    """JSON webhooks sign the URL carrying bodySHA256 and no params."""
    body = '{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body.encode()).hexdigest()
    assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert (
        twilio_signature(f"{TWILIO_URL}&bodySHA256={digest}", [], "12345") == "a9nBmqA0ju/hNViExpshrM61xv4="
    )


def test_tencent_tc3_matches_documentation_example() -> None:
    """Vector C1: Tencent's DescribeInstances example signs to 72e494ea…5168."""
    payload = json.dumps({"Limit": 1, "Filters": [{"Values": ["未命名"], "Name": "instance-name"}]}).encode()
    assert (
        payload
        == b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    assert (
        hashlib.sha256(payload).hexdigest()
        == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    signature = tencent_tc3_signature(
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="cvm",
        host="cvm.tencentcloudapi.com",
        timestamp=1551113065,
        payload=payload,
    )
    assert signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    authorization = tencent_tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="cvm",
        host="cvm.tencentcloudapi.com",
        timestamp=1551113065,
        payload=payload,
    )
    assert authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


# ----- Repeated values and unicode, against signers written here from the spec sheet --------------
# The functions below follow PROVIDERS.md (§1.4, §1.5, §2.4, §3) with hmac, hashlib and base64 only,
# and never call nudge.signing; each scheme also has one digest written out by hand below.

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _rfc3986(text: str) -> str:
    """RFC 3986 as Aliyun wants it: unreserved bytes stay, every other UTF-8 byte is %XX (upper)."""
    return "".join(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8"))


def _aliyun_query(params: dict[str, str]) -> str:
    return "&".join(_rfc3986(key) + "=" + _rfc3986(params[key]) for key in sorted(params))


def _spec_aliyun_rpc(params: dict[str, str], secret: str, method: str) -> str:
    """§1.4: Base64(HMAC-SHA1(secret + "&", METHOD & %2F & pct(canonical query)))."""
    to_sign = method + "&" + _rfc3986("/") + "&" + _rfc3986(_aliyun_query(params))
    mac = hmac.new((secret + "&").encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _spec_aliyun_acs3(
    *,
    secret: str,
    method: str,
    query: dict[str, str],
    headers: list[tuple[str, str]],
    body: bytes,
    path: str = "/",
) -> tuple[str, str]:
    """§1.5: hex HMAC-SHA256 over the hashed canonical request; (signature, signed header names).

    ``headers`` are (name, value) pairs as sent; names differing only in case are one header,
    its trimmed values sorted and joined by commas.
    """
    signed: dict[str, list[str]] = {}
    for name, value in headers:
        lower = name.lower()
        if lower == "host" or lower == "content-type" or lower.startswith("x-acs-"):
            signed.setdefault(lower, []).append(value.strip())
    names = sorted(signed)
    canonical_headers = "".join(name + ":" + ",".join(sorted(signed[name])) + "\n" for name in names)
    canonical = "\n".join(
        [
            method,
            path,
            _aliyun_query(query),
            canonical_headers,
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest(), ";".join(
        names
    )


def _spec_tencent_tc3(
    *,
    secret_key: str,
    service: str,
    host: str,
    timestamp: int,
    body: bytes,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    """§3: the TC3 key chain over the UTC date, service and "tc3_request", then the string to sign."""
    day = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    canonical = (
        "POST\n/\n\ncontent-type:"
        + content_type
        + "\nhost:"
        + host
        + "\n\ncontent-type;host\n"
        + hashlib.sha256(body).hexdigest()
    )
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            f"{day}/{service}/tc3_request",
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    key = ("TC3" + secret_key).encode("utf-8")
    for part in (day, service, "tc3_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _spec_twilio(url: str, params: list[tuple[str, str]], token: str) -> str:
    """§2.4: the URL, then name + value for each name in order, each distinct value sorted."""
    data = url
    for name in sorted({name for name, _ in params}):
        for value in sorted({v for n, v in params if n == name}):
            data += name + value
    return base64.b64encode(
        hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    ).decode()


def test_spec_signers_reproduce_the_published_vectors() -> None:
    """The spec-sheet signers used as oracles below give the published vectors A1, A3, C1 and Twilio's."""
    assert _spec_aliyun_rpc(A1_PARAMS, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    a3_headers = [
        ("host", "ecs.cn-shanghai.aliyuncs.com"),
        ("x-acs-action", "RunInstances"),
        ("x-acs-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("x-acs-date", "2023-10-26T10:22:32Z"),
        ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
        ("x-acs-version", "2014-05-26"),
    ]
    a3_query = {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", "RegionId": "cn-shanghai"}
    assert (
        _spec_aliyun_acs3(
            secret="YourAccessKeySecret", method="POST", query=a3_query, headers=a3_headers, body=b""
        )[0]
        == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )
    c1_body = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    assert (
        _spec_tencent_tc3(
            secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service="cvm",
            host="cvm.tencentcloudapi.com",
            timestamp=1551113065,
            body=c1_body,
        )
        == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )
    assert _spec_twilio(TWILIO_URL, TWILIO_PARAMS, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    duplicates = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert _spec_twilio(TWILIO_URL, duplicates, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


UNICODE_TEMPLATE_PARAM = '{"name":"张三","code":"8848","gift":"🎁","note":"退订回R 👍"}'
RPC_UNICODE = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "JSON",
    "OutId": "订单-42",
    "PhoneNumbers": "13800138000",
    "RegionId": "cn-hangzhou",
    "SignName": "努济商城",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "nonce-☃",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_154950909",
    "TemplateParam": UNICODE_TEMPLATE_PARAM,
    "Timestamp": "2026-11-25T08:00:00Z",
    "Version": "2017-05-25",
}
RPC_REPEATED = {
    "AccessKeyId": "testId",
    "Action": "SendBatchSms",
    "Format": "JSON",
    "PhoneNumberJson": '["13800138000","13800138000","13900139000"]',
    "RegionId": "cn-hangzhou",
    "SignNameJson": '["努济","努济","努济"]',
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "same",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_154950909",
    "TemplateParamJson": '[{"code":"1234"},{"code":"1234"},{"code":"😜"}]',
    "Timestamp": "same",
    "Version": "2017-05-25",
}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("params", [RPC_UNICODE, RPC_REPEATED], ids=["unicode", "repeated-values"])
def test_aliyun_rpc_signature_with_unicode_and_repeated_values_follows_the_spec(
    params: dict[str, str], method: str
) -> None:
    """Chinese and emoji parameters (UTF-8, each byte %XX) and values repeated within a batch or
    across names sign as the spec says."""
    assert aliyun_rpc_signature(params, "testSecret", method=method) == _spec_aliyun_rpc(
        params, "testSecret", method
    )


def test_aliyun_rpc_signature_unicode_vector() -> None:
    """Our own vectors, written out: the unicode SendSms and the repeated-value SendBatchSms, POST."""
    assert "%25E5%25BC%25A0%25E4%25B8%2589" in aliyun_rpc_string_to_sign(RPC_UNICODE)  # 张三, encoded twice
    assert "%25F0%259F%258E%2581" in aliyun_rpc_string_to_sign(RPC_UNICODE)  # 🎁
    assert aliyun_rpc_signature(RPC_UNICODE, "testSecret") == "oYeWEqclbDy37VTqjl6i9Mtk/WA="
    assert aliyun_rpc_signature(RPC_REPEATED, "testSecret") == "ORDrslAuSQ+uxAlqQfmGSPvppRc="


def _acs3_case() -> tuple[dict[str, str], list[tuple[str, str]], bytes]:
    """A SendSms whose query carries Chinese, emoji and a value repeated under two names, and
    whose headers repeat one name in two cases with the same value."""
    body = (
        "TemplateParamJson="
        + quote('[{"code":"1234"},{"code":"1234"}]', safe="")
        + "&SignNameJson="
        + quote('["努济","努济"]', safe="")
    ).encode()
    query = {
        "PhoneNumbers": "13800138000,13800138000",
        "SignName": "努济商城",
        "TemplateCode": "SMS_154950909",
        "TemplateParam": UNICODE_TEMPLATE_PARAM,
        "OutId": "13800138000",
    }
    headers = [
        ("Host", "dysmsapi.aliyuncs.com"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("x-acs-action", "SendSms"),
        ("x-acs-version", "2017-05-25"),
        ("x-acs-date", "2026-11-25T08:00:00Z"),
        ("x-acs-signature-nonce", "n-1"),
        ("x-acs-content-sha256", hashlib.sha256(body).hexdigest()),
        ("x-acs-test", " 甲 "),
        ("X-ACS-TEST", "甲"),
        ("user-agent", "nudge ☃"),
    ]
    return query, headers, body


def test_aliyun_acs3_with_unicode_and_repeated_values_follows_the_spec() -> None:
    """ACS3 over a unicode query, a repeated header value and a form body with repeated values
    matches the spec-sheet signer, and its digest is pinned."""
    query, headers, body = _acs3_case()
    signature, signed_names = _spec_aliyun_acs3(
        secret="k3y", method="POST", query=query, headers=headers, body=body
    )
    authorization = aliyun_acs3_authorization(
        access_key_id="AK",
        secret="k3y",
        method="POST",
        path="/",
        query=query,
        headers=dict(headers),
        payload_sha256=hashlib.sha256(body).hexdigest(),
    )
    fields = parse_acs3_authorization(authorization)
    assert (fields["Signature"], fields["SignedHeaders"]) == (signature, signed_names)
    assert signed_names == (
        "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;"
        "x-acs-test;x-acs-version"
    )
    assert signature == "df37055823d67072052e73a18d7fc3a7b8cbf0c1f8015889c3c25dfed37063cf"


TC3_BODY = json.dumps(
    {
        "PhoneNumberSet": ["+8613800138000", "+8613800138000"],
        "SmsSdkAppId": "1400006666",
        "SignName": "努济商城",
        "TemplateId": "1110",
        "TemplateParamSet": ["张三", "8848", "8848", "🎁"],
        "SessionContext": "退订回R 👍",
    },
    ensure_ascii=False,
    separators=(",", ":"),
).encode("utf-8")


@pytest.mark.parametrize(
    "timestamp",
    [1795564800, 1795651199, 1795622400],
    ids=["utc-midnight", "utc-23:59:59", "china-midnight"],
)
def test_tencent_tc3_with_unicode_and_repeated_values_follows_the_spec(timestamp: int) -> None:
    """A UTF-8 JSON body with Chinese, emoji and repeated template values signs as the spec says,
    with the UTC date of the timestamp (not China's) in the scope."""
    expected = _spec_tencent_tc3(
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="sms",
        host="sms.tencentcloudapi.com",
        timestamp=timestamp,
        body=TC3_BODY,
    )
    assert (
        tencent_tc3_signature(
            secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service="sms",
            host="sms.tencentcloudapi.com",
            timestamp=timestamp,
            payload=TC3_BODY,
        )
        == expected
    )


def test_tencent_tc3_unicode_vector() -> None:
    """Our own vector, written out: the unicode body at 23:59:59 UTC, already the next day in China."""
    assert "张三".encode() in TC3_BODY  # raw UTF-8, not \\u escapes
    assert (
        tencent_tc3_signature(
            secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service="sms",
            host="sms.tencentcloudapi.com",
            timestamp=1795651199,
            payload=TC3_BODY,
        )
        == "66a1741c606e150b9aea5d1bad71b88ce56cbf91b7b1d47238b1d403508dbafe"
    )


TWILIO_INBOUND = "https://nudge.example.com/v1/webhooks/twilio/inbound"
TWILIO_UNICODE = [
    ("Body", "退订 👍 Ünïcode"),
    ("From", "+8613800138000"),
    ("MediaUrl0", "https://media.example/ä.png"),
    ("MediaUrl0", "https://media.example/ä.png"),  # the same value twice: counted once
    ("Tag", "😜"),
    ("Tag", "a"),
    ("Tag", "😜"),
    ("To", "+8613800138000"),  # the same value as From, under another name
]


def test_twilio_signature_with_unicode_and_repeated_values_follows_the_spec() -> None:
    """A unicode body, a value repeated under one name (counted once) and under two names sign as
    the spec says, in any order of arrival, and validate."""
    expected = _spec_twilio(TWILIO_INBOUND, TWILIO_UNICODE, "tok")
    assert twilio_signature(TWILIO_INBOUND, TWILIO_UNICODE, "tok") == expected
    assert twilio_signature(TWILIO_INBOUND, list(reversed(TWILIO_UNICODE)), "tok") == expected
    assert twilio_signature_valid(TWILIO_INBOUND, TWILIO_UNICODE, expected, "tok")
    once = [pair for i, pair in enumerate(TWILIO_UNICODE) if pair not in TWILIO_UNICODE[:i]]
    assert twilio_signature(TWILIO_INBOUND, once, "tok") == expected


def test_twilio_signature_unicode_vector() -> None:
    """Our own vector, written out, for the unicode parameters with repeated values."""
    assert twilio_signature(TWILIO_INBOUND, TWILIO_UNICODE, "tok") == "F07m29mL2zxpVCZ8MrnRyaBhKsY="


# ----- Authorization parsing, URL variants, paths, content types and the process's local zone ------


def test_parse_acs3_authorization_splits_each_field_at_its_first_equals_sign() -> None:
    """A field value that itself holds '=' (base64 padding) is kept whole, not split again."""
    fields = parse_acs3_authorization("ACS3-HMAC-SHA256 Credential=AK==,SignedHeaders=host,Signature=c2ln=")
    assert fields == {"Credential": "AK==", "SignedHeaders": "host", "Signature": "c2ln="}


def test_parse_tc3_authorization_reads_the_documented_header() -> None:
    """The C1 Authorization header parses into its three fields, the spaces after commas trimmed."""
    fields = parse_tc3_authorization(
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )
    assert fields == {
        "Credential": "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request",
        "SignedHeaders": "content-type;host",
        "Signature": "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
    }


MISSING = "authorization lacks Credential, SignedHeaders or Signature"
MALFORMED_AUTHORIZATIONS = [
    ("TC3-HMAC-SHA256 Credential=a,SignedHeaders=b,Signature=c", "not a ACS3-HMAC-SHA256 authorization"),
    ("", "not a ACS3-HMAC-SHA256 authorization"),
    ("ACS3-HMAC-SHA256 Credential=a,SignedHeaders=b", MISSING),
    ("ACS3-HMAC-SHA256 Credential=a,Signature=c", MISSING),
    ("ACS3-HMAC-SHA256 SignedHeaders=b,Signature=c", MISSING),
    ("ACS3-HMAC-SHA256 credential=a,signedheaders=b,signature=c", MISSING),
]


@pytest.mark.parametrize(
    ("value", "message"),
    MALFORMED_AUTHORIZATIONS,
    ids=["other-scheme", "empty", "no-signature", "no-signed-headers", "no-credential", "lowercase-names"],
)
def test_parse_acs3_authorization_rejects_malformed_headers_saying_why(value: str, message: str) -> None:
    """Another scheme, or a missing (or wrongly cased) field, raises ValueError with its reason."""
    with pytest.raises(ValueError) as raised:
        parse_acs3_authorization(value)
    assert str(raised.value) == message


PORT_CASES = [
    # (URL the request came in on, URLs whose signature it accepts, URLs whose signature it refuses)
    (
        "https://h.example/p?x=1",
        ["https://h.example/p?x=1", "https://h.example:443/p?x=1"],
        ["http://h.example/p?x=1", "https://h.example:80/p?x=1", "https://h.example:444/p?x=1"],
    ),
    (
        "https://h.example:443/p",
        ["https://h.example:443/p", "https://h.example/p"],
        ["https://h.example:80/p"],
    ),
    (
        "http://h.example/p",
        ["http://h.example/p", "http://h.example:80/p"],
        ["http://h.example:81/p", "http://h.example:443/p", "https://h.example/p"],
    ),
    (
        "http://h.example:80/p",
        ["http://h.example:80/p", "http://h.example/p"],
        ["http://h.example:443/p"],
    ),
    (
        "http://h.example:8080/p",
        ["http://h.example:8080/p"],
        ["http://h.example/p", "http://h.example:80/p"],
    ),
    (
        "https://user:pa%40ss@h.example/p",
        ["https://user:pa%40ss@h.example/p", "https://user:pa%40ss@h.example:443/p"],
        ["https://h.example:443/p", "https://h.example/p", "https://@@h.example:443/p"],
    ),
    (
        "ftp://h.example/p",
        ["ftp://h.example/p"],
        ["ftp://h.example:21/p", "ftp://h.example:443/p", "ftp://h.example:80/p"],
    ),
    (
        "https:///p",  # no host at all: only the port is toggled, no host is made up
        ["https:///p", "https://:443/p"],
        ["https://XXXX/p", "https://XXXX:443/p", "https://localhost/p"],
    ),
]


@pytest.mark.parametrize(
    ("url", "accepted", "refused"),
    PORT_CASES,
    ids=["https", "https-443", "http", "http-80", "http-custom-port", "userinfo", "other-scheme", "no-host"],
)
def test_twilio_signature_valid_tries_only_the_default_port_variants(
    url: str, accepted: list[str], refused: list[str]
) -> None:
    """A signature is valid over the URL as received, or with its scheme's default port (443, 80)
    added or dropped, credentials kept; never over another port, scheme or host."""
    for signed in accepted:
        signature = _spec_twilio(signed, TWILIO_PARAMS, "12345")
        assert twilio_signature_valid(url, TWILIO_PARAMS, signature, "12345"), signed
    for signed in refused:
        signature = _spec_twilio(signed, TWILIO_PARAMS, "12345")
        assert not twilio_signature_valid(url, TWILIO_PARAMS, signature, "12345"), signed


@pytest.mark.parametrize("path", ["/v1/sms", "/", ""], ids=["roa-path", "root", "empty-means-root"])
def test_aliyun_acs3_signs_the_path_it_is_given(path: str) -> None:
    """The canonical URI is the request's path (an empty one is '/'), as the spec-sheet signer says."""
    query, headers, body = _acs3_case()
    expected, _ = _spec_aliyun_acs3(
        secret="k3y", method="POST", query=query, headers=headers, body=body, path=path or "/"
    )
    authorization = aliyun_acs3_authorization(
        access_key_id="AK",
        secret="k3y",
        method="POST",
        path=path,
        query=query,
        headers=dict(headers),
        payload_sha256=hashlib.sha256(body).hexdigest(),
    )
    assert parse_acs3_authorization(authorization)["Signature"] == expected


def test_tencent_tc3_authorization_signs_the_content_type_it_is_given() -> None:
    """A form-encoded body's content type goes into the signature the Authorization header carries."""
    form = "application/x-www-form-urlencoded"
    authorization = tencent_tc3_authorization(
        secret_id="AKID",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="sms",
        host="sms.tencentcloudapi.com",
        timestamp=1795564800,
        payload=b"a=1",
        content_type=form,
    )
    expected = _spec_tencent_tc3(
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="sms",
        host="sms.tencentcloudapi.com",
        timestamp=1795564800,
        body=b"a=1",
        content_type=form,
    )
    assert parse_tc3_authorization(authorization)["Signature"] == expected


@pytest.fixture
def china_local_time() -> Iterator[None]:
    """The process's local zone is Asia/Shanghai for the test, so a date taken in local time shows."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("china_local_time")
def test_tencent_tc3_uses_the_utc_date_whatever_the_local_zone() -> None:
    """At 23:59:59 UTC on 25 November (already the 26th in Shanghai, the process's zone) the
    scope, the credential and the key chain use 2026-11-25."""
    assert time.localtime(1795651199).tm_mday == 26  # the fixture took effect
    signature = tencent_tc3_signature(
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="sms",
        host="sms.tencentcloudapi.com",
        timestamp=1795651199,
        payload=TC3_BODY,
    )
    assert signature == "66a1741c606e150b9aea5d1bad71b88ce56cbf91b7b1d47238b1d403508dbafe"
    authorization = tencent_tc3_authorization(
        secret_id="AKID",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="sms",
        host="sms.tencentcloudapi.com",
        timestamp=1795651199,
        payload=TC3_BODY,
    )
    assert parse_tc3_authorization(authorization) == {
        "Credential": "AKID/2026-11-25/sms/tc3_request",
        "SignedHeaders": "content-type;host",
        "Signature": "66a1741c606e150b9aea5d1bad71b88ce56cbf91b7b1d47238b1d403508dbafe",
    }


def test_acs3_verifies_over_exactly_the_headers_the_request_lists() -> None:
    """A server checks the headers a request's ``SignedHeaders`` lists (the official SDK signs
    ``accept`` and ``user-agent`` too): those, lowercased and trimmed, in name order; one that
    differs only in case joined by value; one listed but not sent signed as empty; an unlisted
    ``x-acs-*`` header left out. Written out by hand, not derived from the signer."""
    request, names = aliyun_acs3_canonical_request(
        method="post",
        path="/",
        query={},
        headers={
            "Host": "dysmsapi.aliyuncs.com",
            "Accept": " application/json ",
            "User-Agent": "AlibabaCloud (Linux) Tea/1",
            "x-acs-a": "2",
            "X-ACS-A": "1",
            "x-acs-unlisted": "dropped",
        },
        payload_sha256="e3b0",
        signed_headers=["accept", "HOST", "user-agent", "x-acs-a", "x-acs-missing"],
    )
    assert names == "accept;host;user-agent;x-acs-a;x-acs-missing"
    assert request == (
        "POST\n/\n\n"
        "accept:application/json\n"
        "host:dysmsapi.aliyuncs.com\n"
        "user-agent:AlibabaCloud (Linux) Tea/1\n"
        "x-acs-a:1,2\n"
        "x-acs-missing:\n"
        "\naccept;host;user-agent;x-acs-a;x-acs-missing\ne3b0"
    )
