"""Audiences through the real gateway over loopback, and ``nudge audiences`` against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.cli import nudge
from tests.api.conftest import Gateway
from tests.api.test_auth import as_key, key_with

ACTIVE_CN = {
    "all": [
        {"field": "lifecycle_stage", "op": "in", "value": ["active", "vip"]},
        {"field": "country", "op": "eq", "value": "CN"},
        {"field": "consent", "op": "eq", "value": "granted"},
    ]
}


async def add_customers(gateway: Gateway) -> None:
    """Six customers: a1-a3 active in CN with consent (a3 without), b1 in US, v1 vip, n1 new."""
    rows = [
        ("a1", "active", "CN", True, ["vip"]),
        ("a2", "active", "CN", True, []),
        ("a3", "active", "CN", False, []),
        ("b1", "active", "US", True, []),
        ("v1", "vip", "CN", True, ["sale"]),
        ("n1", "new", "CN", True, []),
    ]
    customers = [
        {
            "id": cid,
            "name": f"Name {cid}",
            "phone": f"+861380013800{index}",
            "lifecycle_stage": stage,
            "country": country,
            "attributes": {"language": "zh", "tags": tags},
            **({"consent": {"source": "form"}} if consent else {}),
        }
        for index, (cid, stage, country, consent, tags) in enumerate(rows)
    ]
    answer = await gateway.http.post("/v1/customers:batch", json={"customers": customers})
    assert answer.status_code == 200, answer.text


async def test_query_audience_is_saved_counted_sampled_listed_and_deleted(gateway: Gateway) -> None:
    """The issue's audience: saved by an admin key (recorded by name), counted before anything is
    sent, sampled with masked phones, listed, and deleted (404 after)."""
    await add_customers(gateway)
    ops = await key_with(gateway, "admin", name="ops-console")
    async with as_key(gateway, ops) as http:
        saved = await http.post(
            "/v1/audiences", json={"name": "active-cn", "where": ACTIVE_CN}, params={"by": "ana"}
        )
    assert saved.status_code == 200, saved.text
    assert (saved.json()["created_by"], saved.json()["definition"]) == ("ops-console (ana)", ACTIVE_CN)
    count = await gateway.http.get("/v1/audiences/active-cn/count")
    assert count.json() == {"name": "active-cn", "count": 3}
    sample = (await gateway.http.get("/v1/audiences/active-cn/sample", params={"size": 2})).json()
    assert [(m["id"], m["phone"], m["tags"], m["language"]) for m in sample] == [
        ("a1", "+86*******8000", ["vip"], "zh"),
        ("a2", "+86*******8001", [], "zh"),
    ]
    listed = (await gateway.http.get("/v1/audiences")).json()
    assert [a["name"] for a in listed] == ["active-cn"]
    assert (await gateway.http.get("/v1/audiences/active-cn")).json()["kind"] == "query"
    deleted = await gateway.http.delete("/v1/audiences/active-cn")
    assert deleted.status_code == 200 and deleted.json()["name"] == "active-cn"
    for path in (
        "/v1/audiences/active-cn",
        "/v1/audiences/active-cn/count",
        "/v1/audiences/active-cn/sample",
    ):
        missing = await gateway.http.get(path)
        assert missing.status_code == 404 and missing.json()["detail"] == "unknown audience 'active-cn'"


async def test_a_read_key_counts_but_may_not_sample_or_write(gateway: Gateway) -> None:
    """Counting is a report (read); the sample shows names and numbers (admin), as writes do."""
    await add_customers(gateway)
    await gateway.http.post("/v1/audiences", json={"name": "cn", "where": ACTIVE_CN})
    reader = await key_with(gateway, "read", name="dashboard")
    async with as_key(gateway, reader) as http:
        assert (await http.get("/v1/audiences/cn/count")).json()["count"] == 3
        assert (await http.get("/v1/audiences/cn/sample")).status_code == 403
        assert (await http.post("/v1/audiences", json={"name": "x", "where": ACTIVE_CN})).status_code == 403


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ({"field": "cuntry", "op": "eq", "value": "CN"}, "unknown field 'cuntry'"),
        (
            {"field": "attributes.age", "op": "gt", "value": "eighteen"},
            "attributes.age gt takes a number, not 'eighteen'",
        ),
        (
            {"field": "country", "op": "like", "value": "C%"},
            "country takes the operators eq, ne, in, not_in, exists, not 'like'",
        ),
        (
            {"all": [{"field": "last_active", "op": "within", "value": "a month"}]},
            "is not a duration like 30d",
        ),
    ],
)
async def test_a_bad_definition_is_a_422_that_names_the_mistake(
    gateway: Gateway, where: dict[str, Any], reason: str
) -> None:
    """Unknown fields, mistyped values and operators a field does not take: 422 with the reason."""
    answer = await gateway.http.post("/v1/audiences", json={"name": "bad", "where": where})
    assert answer.status_code == 422
    assert any(reason in error["msg"] for error in answer.json()["detail"]), answer.text
    assert (await gateway.http.get("/v1/audiences/bad")).status_code == 404


async def test_list_members_are_uploaded_as_json_or_csv_and_unknown_ids_reported(gateway: Gateway) -> None:
    """A list takes chunks (JSON, then CSV with a header); ids that are no customer are counted and
    named, not stored; a query audience refuses an upload (409), an unknown one 404s."""
    await add_customers(gateway)
    assert (
        await gateway.http.post("/v1/audiences", json={"name": "picked", "kind": "list"})
    ).status_code == 200
    first = await gateway.http.put(
        "/v1/audiences/picked/members", params={"replace": True}, json={"ids": ["a1", "zz", "b1"]}
    )
    assert first.status_code == 200, first.text
    assert (first.json()["stored"], first.json()["unknown"], first.json()["unknown_ids"]) == (2, 1, ["zz"])
    csv_body = "customer_id\nv1\n\nn1\nnobody\n"
    second = await gateway.http.put(
        "/v1/audiences/picked/members", content=csv_body, headers={"Content-Type": "text/csv"}
    )
    assert second.status_code == 200, second.text
    assert (second.json()["received"], second.json()["stored"], second.json()["members"]) == (3, 2, 4)
    assert (await gateway.http.get("/v1/audiences/picked/count")).json()["count"] == 4
    sample = (await gateway.http.get("/v1/audiences/picked/sample")).json()
    assert [m["id"] for m in sample] == ["a1", "b1", "n1", "v1"]
    await gateway.http.post("/v1/audiences", json={"name": "query", "where": ACTIVE_CN})
    refused = await gateway.http.put("/v1/audiences/query/members", json={"ids": ["a1"]})
    assert refused.status_code == 409 and "query audience" in refused.json()["detail"]
    assert (await gateway.http.put("/v1/audiences/nope/members", json={"ids": ["a1"]})).status_code == 404
    bad = await gateway.http.put("/v1/audiences/picked/members", json={"ids": "a1"})
    assert bad.status_code == 422 and '{"ids": [...]}' in bad.json()["detail"][0]["msg"]
    control = await gateway.http.put("/v1/audiences/picked/members", json={"ids": ["ok", "bad\nid"]})
    assert control.status_code == 422 and "id 2 is not a customer id" in control.json()["detail"][0]["msg"]


async def test_cli_creates_shows_counts_lists_and_deletes_a_query_audience(gateway: Gateway) -> None:
    """`nudge audiences create --where` in the text form, then show --sample, count, list, delete."""
    await add_customers(gateway)
    where = "lifecycle_stage in (active, vip) and country = CN and consent = granted and not tags has sale"
    created = await nudge(gateway, "audiences", "create", "active-cn", "--where", where, "--by", "ana")
    assert created.exit_code == 0, created.output
    assert "audience active-cn saved: 2 customers now" in created.output
    stored = (await gateway.http.get("/v1/audiences/active-cn")).json()
    assert stored["created_by"] == "tests (ana)" and stored["definition"]["all"][3] == {
        "not": {"field": "tags", "op": "has", "value": "sale"}
    }
    shown = await nudge(gateway, "audiences", "show", "active-cn", "--sample", "20")
    assert shown.exit_code == 0, shown.output
    assert f"where {where}" in shown.output and "2 customers now" in shown.output
    assert "+86*******8000" in shown.output and "+8613800138000" not in shown.output
    counted = await nudge(gateway, "audiences", "count", "active-cn")
    assert counted.exit_code == 0 and counted.output.strip() == "2"
    listed = await nudge(gateway, "audiences", "list")
    assert "active-cn" in listed.output and "query" in listed.output
    deleted = await nudge(gateway, "audiences", "delete", "active-cn")
    assert deleted.exit_code == 0 and "audience active-cn deleted" in deleted.output
    gone = await nudge(gateway, "audiences", "count", "active-cn")
    assert gone.exit_code == 2 and "unknown audience 'active-cn' (404)" in gone.output


async def test_cli_uploads_a_csv_of_ids_and_reports_the_unknown(gateway: Gateway, tmp_path: Path) -> None:
    """`--ids FILE.csv`: the list holds the customers among the ids; the others are reported."""
    await add_customers(gateway)
    csv_file = tmp_path / "vips.csv"
    csv_file.write_text("id,note\na1,x\nv1,y\nghost,z\n")
    created = await nudge(gateway, "audiences", "create", "vips", "--ids", str(csv_file))
    assert created.exit_code == 0, created.output
    assert "audience vips saved: 2 customers from 3 ids" in created.output
    assert "1 ids are no customer (or an erased one), not stored: ghost" in created.output
    assert (await nudge(gateway, "audiences", "count", "vips")).output.strip() == "2"


async def test_cli_refuses_bad_where_with_the_reason_and_exit_2(gateway: Gateway) -> None:
    """A syntax error is refused before any request; an unknown field with the gateway's reason."""
    syntax = await nudge(gateway, "audiences", "create", "x", "--where", "country CN")
    assert syntax.exit_code == 2 and "expected an operator after 'country'" in syntax.output
    unknown = await nudge(gateway, "audiences", "create", "x", "--where", "cuntry = CN")
    assert unknown.exit_code == 2 and "unknown field 'cuntry'" in unknown.output and "(422)" in unknown.output
    both = await nudge(gateway, "audiences", "create", "x")
    assert both.exit_code == 2 and "exactly one of --where or --ids" in both.output
    assert (await gateway.http.get("/v1/audiences")).json() == []
