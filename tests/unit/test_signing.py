"""The signing code reproduces the providers' published vectors, and ours."""

from __future__ import annotations

import hashlib
import hmac
import json

from nudge.signing import (
    aliyun_acs3_authorization,
    aliyun_acs3_canonical_request,
    aliyun_rpc_signature,
    aliyun_rpc_string_to_sign,
    canonical_query,
    parse_acs3_authorization,
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
    """Vector A2: the darabonba SDK's own test."""
    params = {"query": "test", "body": "test"}
    assert aliyun_rpc_string_to_sign(params, method="GET") == "GET&%2F&body%3Dtest%26query%3Dtest"
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
