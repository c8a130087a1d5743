"""The registry's HTTP API on the real gateway over loopback: /v1/templates and /v1/signatures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Gateway

SALE_ZH = "${name}，春季特惠 ${url} 拒收请回复R"


async def put_sale(gateway: Gateway, body: str = SALE_ZH, **extra: Any) -> dict[str, Any]:
    payload = {"body": body, "category": "marketing", "provider_codes": {"aliyun": "SMS_9"}, **extra}
    response = await gateway.http.put("/v1/templates/sale", params={"language": "zh"}, json=payload)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_templates_api_lists_the_seeded_builtins(gateway: Gateway) -> None:
    """The built-in templates are listed as approved default variants, with their variables."""
    response = await gateway.http.get("/v1/templates")
    assert response.status_code == 200
    cart = next(t for t in response.json() if t["code"] == "cart_reminder")
    assert (cart["language"], cart["status"], cart["variables"]) == ("", "approved", ["name", "cart_url"])


async def test_templates_api_review_flow_and_edit_back_to_draft(gateway: Gateway) -> None:
    """put -> draft, submit -> pending, approve -> approved; a changed body is a draft again,
    and the answer says so."""
    created = await put_sale(gateway)
    assert (created["created"], created["template"]["status"]) == (True, "draft")
    submitted = await gateway.http.post("/v1/templates/sale:submit", params={"language": "zh"})
    assert submitted.json()["status"] == "pending"
    approved = await gateway.http.post("/v1/templates/sale:approve", params={"language": "zh"})
    assert approved.json()["status"] == "approved"
    shown = await gateway.http.get("/v1/templates/sale", params={"language": "zh"})
    assert (shown.json()["status"], shown.json()["provider_codes"]) == ("approved", {"aliyun": "SMS_9"})

    edited = await put_sale(gateway, body=SALE_ZH.replace("春季", "夏季"))
    assert (edited["changed"], edited["review_reset"], edited["template"]["status"]) == (
        True,
        "approved",
        "draft",
    )
    assert edited["template"]["version"] == 2
    assert "not sent until it is approved again" in edited["notice"]


async def test_templates_api_approve_without_opt_out_is_422(gateway: Gateway) -> None:
    """Approving a Chinese marketing template without 拒收请回复R at the end is refused with why."""
    await put_sale(gateway, body="${name}，春季特惠 ${url}")
    response = await gateway.http.post("/v1/templates/sale:approve", params={"language": "zh"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert "must end with 拒收请回复R" in error["msg"], error


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"body": "Hi ${1}", "category": "marketing"}, "unknown placeholder syntax"),
        ({"body": "Hi", "category": "promo"}, "'marketing' or 'transactional'"),
        ({"body": "Hi", "category": "marketing", "provider_codes": {"acme": "1"}}, "aliyun"),
    ],
    ids=["placeholder", "category", "provider"],
)
async def test_templates_api_bad_input_is_422(
    gateway: Gateway, payload: dict[str, Any], expected: str
) -> None:
    """Bad placeholder syntax, an unknown category or provider: 422 with the reason."""
    response = await gateway.http.put("/v1/templates/x", json=payload)
    assert response.status_code == 422
    assert expected in response.text


async def test_registry_api_unknown_entry_is_404(gateway: Gateway) -> None:
    """Unknown templates, variants and signatures answer 404 naming them."""
    for method, path, params in (
        ("GET", "/v1/templates/nope", {}),
        ("GET", "/v1/templates/cart_reminder", {"language": "fr"}),
        ("POST", "/v1/templates/nope:approve", {}),
        ("GET", "/v1/signatures/Acme", {}),
    ):
        response = await gateway.http.request(method, path, params=params)
        assert response.status_code == 404, path
        assert "unknown" in response.json()["detail"]


async def test_templates_api_forbidden_transition_is_409(gateway: Gateway) -> None:
    """A rejected template cannot be approved: 409 with its state and what to do."""
    rejected = await gateway.http.post("/v1/templates/cart_coupon:reject", json={"reason": "withdrawn"})
    assert (rejected.json()["status"], rejected.json()["reason"]) == ("rejected", "withdrawn")
    response = await gateway.http.post("/v1/templates/cart_coupon:approve")
    assert response.status_code == 409
    assert "it is rejected; put it again" in response.json()["detail"]


async def test_templates_api_put_of_a_rejected_template_as_it_was_makes_it_a_draft(gateway: Gateway) -> None:
    """The way back the README promises: a rejected template put again with the same text is a
    draft again (changed, review_reset rejected, the version unchanged), and can then be approved."""
    await put_sale(gateway)
    await gateway.http.post("/v1/templates/sale:reject", params={"language": "zh"}, json={"reason": "typo?"})
    again = await put_sale(gateway)
    assert (again["changed"], again["review_reset"], again["template"]["status"]) == (
        True,
        "rejected",
        "draft",
    )
    assert (again["template"]["version"], again["template"]["reason"]) == (1, None)
    approved = await gateway.http.post("/v1/templates/sale:approve", params={"language": "zh"})
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    unchanged = await put_sale(gateway)  # an approved template put as it is stays approved
    assert (unchanged["changed"], unchanged["template"]["status"]) == (False, "approved")


async def test_signatures_api_review_flow(gateway: Gateway) -> None:
    """A new signature (non-ASCII in the path) is a draft, then approved, then rejected with a
    reason; a rejection without one is 422."""
    created = await gateway.http.put("/v1/signatures/努济商城")
    assert (created.json()["created"], created.json()["signature"]["status"]) == (True, "draft")
    approved = await gateway.http.post("/v1/signatures/努济商城:approve")
    assert approved.json()["status"] == "approved"
    assert (await gateway.http.post("/v1/signatures/努济商城:reject", json={})).status_code == 422
    rejected = await gateway.http.post("/v1/signatures/努济商城:reject", json={"reason": "expired"})
    assert (rejected.json()["status"], rejected.json()["reason"]) == ("rejected", "expired")
    listed = {s["name"]: s["status"] for s in (await gateway.http.get("/v1/signatures")).json()}
    assert listed["努济商城"] == "rejected" and listed["+15005550006"] == "approved"
