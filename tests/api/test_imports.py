"""Customer import jobs on the real gateway over loopback: their steps and refusals, an import
interrupted or killed mid-way leaving ``customer`` untouched, and the same profiles as the batch."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from nudge.apikeys import Scope
from nudge.settings import Settings
from nudge.store import Customer, CustomerImport, CustomerImportRow, session_factory, utcnow
from starter.api import create_app
from starter.api.services.imports import _POOLS, ABANDONED_AFTER, Imports, shutdown_pools
from starter.api.services.keys import ApiKeys
from starter.csv_customers import customer_record
from tests.api.conftest import Gateway
from tests.servers import serve

HEADER = ["id", "name", "phone", "tier"]


async def counts(gateway: Gateway, prefix: str) -> tuple[int, int]:
    """Customers whose id starts with ``prefix``, and rows staged for any import."""
    async with gateway.sessions() as session:
        customers = (
            await session.exec(select(func.count()).where(col(Customer.id).startswith(prefix)))
        ).one()
        staged = (await session.exec(select(func.count()).select_from(CustomerImportRow))).one()
    return customers, staged


async def job(gateway: Gateway, import_id: str) -> dict[str, Any]:
    response = await gateway.http.get(f"/v1/customer-imports/{import_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def opened(gateway: Gateway, header: list[str] = HEADER) -> str:
    response = await gateway.http.post("/v1/customer-imports", json={"header": header})
    assert response.status_code == 201, response.text
    import_id: str = response.json()["id"]
    return import_id


async def test_import_steps_and_what_each_state_refuses(gateway: Gateway) -> None:
    """Rows are staged (and rejected with reasons) without touching `customer`; the commit imports
    them and answers the same when retried; once committed, rows and abort are 409; an aborted
    import cannot be committed; unknown ids are 404; lines given twice are 409."""
    tag = uuid.uuid4().hex[:6]
    import_id = await opened(gateway)
    rows = {"lines": [2, 3], "rows": [[f"s1-{tag}", "Ann", "+8613800138020"], [f"s2-{tag}", "Bo", "nope"]]}
    staged = await gateway.http.post(f"/v1/customer-imports/{import_id}/rows", json=rows)
    assert staged.status_code == 200, staged.text
    assert staged.json() == {
        "staged": 1,
        "rejected": [
            {"line": 3, "customer_id": f"s2-{tag}", "reason": staged.json()["rejected"][0]["reason"]}
        ],
    }
    assert staged.json()["rejected"][0]["reason"].startswith("phone: ")
    assert await counts(gateway, f"s1-{tag}") == (0, 1)
    again = await gateway.http.post(f"/v1/customer-imports/{import_id}/rows", json=rows)
    assert again.status_code == 409 and "staged before" in again.json()["detail"]
    assert (await job(gateway, import_id))["staged"] == 1  # the refused chunk left nothing behind

    committed = await gateway.http.post(f"/v1/customer-imports/{import_id}:commit")
    assert committed.status_code == 200, committed.text
    assert {
        k: committed.json()[k] for k in ("status", "staged", "rejected", "created", "updated", "consents")
    } == {
        "status": "committed",
        "staged": 1,
        "rejected": 1,
        "created": 1,
        "updated": 0,
        "consents": 0,
    }
    assert await counts(gateway, f"s1-{tag}") == (1, 0)
    assert (await gateway.http.post(f"/v1/customer-imports/{import_id}:commit")).json() == committed.json()
    late = await gateway.http.post(f"/v1/customer-imports/{import_id}/rows", json=rows)
    assert late.status_code == 409 and "committed" in late.json()["detail"]
    assert (await gateway.http.post(f"/v1/customer-imports/{import_id}:abort")).status_code == 409

    aborted_id = await opened(gateway)
    more = {"lines": [2], "rows": [[f"s3-{tag}", "Cy", ""]]}
    assert (await gateway.http.post(f"/v1/customer-imports/{aborted_id}/rows", json=more)).status_code == 200
    assert (await gateway.http.post(f"/v1/customer-imports/{aborted_id}:abort")).json()["status"] == "aborted"
    assert (await gateway.http.post(f"/v1/customer-imports/{aborted_id}:abort")).status_code == 200
    refused = await gateway.http.post(f"/v1/customer-imports/{aborted_id}:commit")
    assert refused.status_code == 409 and "nothing was imported" in refused.json()["detail"]
    assert await counts(gateway, f"s3-{tag}") == (0, 0)

    for method, path in [
        ("GET", "/v1/customer-imports/imp_nope"),
        ("POST", "/v1/customer-imports/imp_nope/rows"),
        ("POST", "/v1/customer-imports/imp_nope:commit"),
        ("POST", "/v1/customer-imports/imp_nope:abort"),
    ]:
        answer = await gateway.http.request(method, path, json=more)
        assert answer.status_code == 404 and "unknown import" in answer.json()["detail"], (method, path)


async def test_import_refuses_a_header_without_id_and_rows_without_lines(gateway: Gateway) -> None:
    """A header without `id`, or naming a column twice, is 422 with the reason; so is a chunk whose
    lines and rows do not pair up."""
    for header, why in ((["name", "phone"], "'id' column"), (["id", "tier", "tier"], "'tier' twice")):
        response = await gateway.http.post("/v1/customer-imports", json={"header": header})
        assert response.status_code == 422 and why in response.text, response.text
    import_id = await opened(gateway)
    unpaired = {"lines": [2, 3], "rows": [["x1"]]}
    response = await gateway.http.post(f"/v1/customer-imports/{import_id}/rows", json=unpaired)
    assert response.status_code == 422 and "one line per row" in response.text


async def test_import_left_open_is_discarded_by_age_when_the_next_one_opens(gateway: Gateway) -> None:
    """An import with no chunk for ABANDONED_AFTER is given up when another import is opened: its
    staged rows are deleted, it is `expired`, its commit refused; a recent one is left alone."""
    tag = uuid.uuid4().hex[:6]
    old, recent = await opened(gateway), await opened(gateway)
    for import_id, line in ((old, 2), (recent, 3)):
        chunk = {"lines": [line], "rows": [[f"a{line}-{tag}", "Al", "+8613800138021"]]}
        assert (
            await gateway.http.post(f"/v1/customer-imports/{import_id}/rows", json=chunk)
        ).status_code == 200
    async with gateway.sessions() as session:
        await session.exec(
            update(CustomerImport)
            .where(col(CustomerImport.id) == old)
            .values(updated_at=utcnow() - ABANDONED_AFTER - timedelta(minutes=1))
        )
        await session.commit()
    assert await counts(gateway, f"a2-{tag}") == (0, 2)
    await opened(gateway)
    assert (await job(gateway, old))["status"] == "expired"
    assert (await job(gateway, recent))["status"] == "open"
    assert await counts(gateway, f"a2-{tag}") == (0, 1)
    assert (await gateway.http.post(f"/v1/customer-imports/{old}:commit")).status_code == 409
    assert await counts(gateway, f"a2-{tag}") == (0, 1)


def big_csv(path: Path, rows: int, prefix: str) -> Path:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER)
        for i in range(rows):
            out.writerow([f"{prefix}{i}", f"Customer {i}", f"+86138{i:08d}", "gold"])
    return path


async def start_cli(gateway: Gateway, file: Path) -> asyncio.subprocess.Process:
    """``nudge customers import FILE`` in a process of its own, as a user runs it."""
    key = gateway.http.headers["Authorization"].removeprefix("Bearer ")
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "starter.cli", "customers", "import", str(file)),
        *("--gateway", str(gateway.http.base_url), "--batch-size", "1000"),
        env={**os.environ, "NUDGE_API_KEY": key, "COLUMNS": "120"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def until_some_rows_are_staged(gateway: Gateway, cli: asyncio.subprocess.Process) -> None:
    """Wait (without blocking the gateway's loop) until the CLI is mid-import."""
    for _ in range(1200):  # two minutes: the CLI's start takes seconds on a loaded machine
        if (await counts(gateway, "-"))[1] > 0:
            return
        assert cli.returncode is None, await cli.stderr.read() if cli.stderr else b""
        await asyncio.sleep(0.1)
    raise AssertionError("the CLI staged nothing in two minutes")


async def test_import_interrupted_by_sigint_leaves_customer_untouched(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT) in the middle of a 60,000-row import: the CLI aborts the import, says so and
    exits 130; no customer of the file exists and no row is left staged."""
    prefix = f"int-{uuid.uuid4().hex[:6]}-"
    cli = await start_cli(gateway, big_csv(tmp_path / "big.csv", 60_000, prefix))
    await until_some_rows_are_staged(gateway, cli)
    cli.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(cli.communicate(), timeout=120)
    assert cli.returncode == 130, stderr.decode()
    assert "interrupted: the import was aborted and nothing was imported" in stderr.decode()
    assert await counts(gateway, prefix) == (0, 0)
    async with gateway.sessions() as session:
        assert (await session.exec(select(CustomerImport.status))).all() == ["aborted"]


async def test_import_killed_mid_way_imports_nothing_and_its_rows_expire(
    gateway: Gateway, tmp_path: Path
) -> None:
    """A CLI killed outright (SIGKILL: no handler runs) mid-import leaves `customer` untouched; its
    staged rows stay until the age check gives the import up, then none are left."""
    prefix = f"kil-{uuid.uuid4().hex[:6]}-"
    cli = await start_cli(gateway, big_csv(tmp_path / "big.csv", 60_000, prefix))
    await until_some_rows_are_staged(gateway, cli)
    cli.kill()
    await cli.wait()
    await asyncio.sleep(1)  # a chunk the gateway was checking when the client died lands, or not
    customers, staged = await counts(gateway, prefix)
    assert customers == 0 and staged > 0
    imports = Imports(gateway.sessions, default_region="CN")
    assert await imports.discard_abandoned(now=utcnow() + ABANDONED_AFTER + timedelta(minutes=1)) == 1
    assert await counts(gateway, prefix) == (0, 0)


async def test_import_stores_what_the_batch_stores(gateway: Gateway, tmp_path: Path) -> None:
    """The same CSV rows through an import and through /v1/customers:batch (as `customer_record`
    reads them) give the same profiles, field by field, and the same consent."""
    tag = uuid.uuid4().hex[:6]
    header = [
        "id",
        "name",
        "phone",
        "lifecycle_stage",
        "country",
        "timezone",
        "tier",
        "consent_source",
        "consent_text",
    ]
    rows = [
        ["r1", "Ann", "13800138030", "active", "CN", "Asia/Shanghai", "gold", "form", "Offers"],
        ["r2", "", "+14155552671", "", "", "", "", "", ""],
        ["r3", "Cy", "020 7946 0958", "lapsed", "GB", "Europe/London", "silver", "crm", ""],
        ["r4", "Di", "", "", "", "", "bronze", "", "ignored without a source"],
    ]
    import_id = await opened(gateway, header)
    chunk = {"lines": [2, 3, 4, 5], "rows": [[f"i-{tag}-{r[0]}", *r[1:]] for r in rows]}
    staged = await gateway.http.post(f"/v1/customer-imports/{import_id}/rows", json=chunk)
    assert staged.json()["rejected"] == [], staged.text
    assert (await gateway.http.post(f"/v1/customer-imports/{import_id}:commit")).status_code == 200
    batch = [customer_record(dict(zip(header, [f"b-{tag}-{r[0]}", *r[1:]], strict=True))) for r in rows]
    assert (await gateway.http.post("/v1/customers:batch", json={"customers": batch})).status_code == 200
    for row in rows:
        imported = (await gateway.http.get(f"/v1/customers/i-{tag}-{row[0]}")).json()
        batched = (await gateway.http.get(f"/v1/customers/b-{tag}-{row[0]}")).json()
        drop = ("id", "created_at")
        assert {k: v for k, v in imported.items() if k not in drop} == {
            k: v for k, v in batched.items() if k not in drop
        }, row[0]
        consents = [
            (await gateway.http.get(f"/v1/customers/{who}-{tag}-{row[0]}/consent")).json()["current"]
            for who in ("i", "b")
        ]
        shown = [[(c["granted"], c["source"], c["text"]) for c in current] for current in consents]
        assert shown[0] == shown[1], row[0]


async def test_the_checking_processes_end_with_the_gateway(
    env: WorkflowEnvironment, engine: AsyncEngine, gateway_settings: Settings
) -> None:
    """Rows staged through a gateway checked in processes of their own (``import_workers``): when
    its lifespan ends they are stopped, none left behind as an orphan, and the next check starts
    a pool anew."""
    app = create_app(gateway_settings.model_copy(update={"import_workers": 1}), client=env.client)
    sessions = session_factory(engine)
    admin, _ = await ApiKeys(sessions, cache_ttl=timedelta(0)).create("tests", [Scope.ADMIN], by="test")
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as http,
    ):
        opened = await http.post("/v1/customer-imports", json={"header": HEADER})
        rows = {"lines": [2], "rows": [["c-pool", "Ann", "+8613800000000", None]]}
        staged = await http.post(f"/v1/customer-imports/{opened.json()['id']}/rows", json=rows)
        assert staged.status_code == 200, staged.text
        assert staged.json()["staged"] == 1
        processes = [p for pool in _POOLS.values() for p in (pool._processes or {}).values()]
        assert processes and all(p.is_alive() for p in processes)
    assert not _POOLS
    assert not any(p.is_alive() for p in processes)
    checked = await Imports(sessions, default_region="CN", workers=1)._check(
        HEADER, [2], [["c-pool", "Ann", "+8613800000000", None]]
    )
    assert len(checked.staged) == 1
    await shutdown_pools()
