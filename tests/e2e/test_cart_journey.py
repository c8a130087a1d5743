"""End to end: the real dev server, worker, gateway and simulator, all over loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from nudge.binaries import find_binary
from nudge.models import JourneyResult
from nudge.temporal import connect
from starter.stack import Stack
from workflows import CartAbandonment

pytestmark = pytest.mark.e2e


async def _client(stack: Stack) -> Client:
    return await connect(stack.client_settings, wait=30)


async def _wait_for(predicate: Any, *, timeout: float = 30, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


async def _customer_event(
    gw: httpx.AsyncClient, customer: str, phone: str, name: str, **properties: Any
) -> dict[str, Any]:
    """Create the customer with a phone and marketing consent, then post one event for them; both
    must be accepted."""
    profile = {"id": customer, "name": "Eli", "phone": phone, "consent": {"source": "e2e_signup"}}
    r = await gw.put(f"/v1/customers/{customer}", json=profile)
    assert r.status_code == 200, r.text
    body = {"event_id": uuid.uuid4().hex, "customer_id": customer, "name": name, "properties": properties}
    r = await gw.post("/v1/events", json=body)
    assert r.status_code == 202, r.text
    accepted: dict[str, Any] = r.json()
    return accepted


async def test_cart_journey_clicked_reminder_earns_coupon_end_to_end(stack: Stack) -> None:
    """cart_abandoned -> SMS in the carrier's ledger -> simulated click -> coupon -> end state."""
    customer, cart = f"e2e-{uuid.uuid4().hex[:6]}", "k1"
    phone = "+8613800138011"
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
        httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
    ):
        await sim.post("/_sim/config", json={"click_numbers": [phone], "click_delay_ms": 1200})
        accepted = await _customer_event(
            gw, customer, phone, "cart_abandoned", cart_id=cart, url="https://shop.example.com/cart/k1"
        )
        workflow_id = CartAbandonment.workflow_id(customer, cart)
        assert accepted["workflow_ids"] == [workflow_id]

        async def ledger_for_customer() -> list[dict[str, Any]]:
            entries = (await sim.get("/_sim/ledger")).json()
            return [m for m in entries if m["to"] == phone]

        first = await _wait_for(ledger_for_customer)
        assert "your cart is waiting" in first[0]["body"]
        assert f"{stack.gateway_url}/l/" in first[0]["body"]

        async def two_messages() -> list[dict[str, Any]]:
            entries = await ledger_for_customer()
            return entries if len(entries) >= 2 else []

        both = await _wait_for(two_messages)
        assert "10% off" in both[1]["body"]
        assert both[0]["clicked"], "the simulator should have clicked the reminder's link"

    client = await _client(stack)
    handle = client.get_workflow_handle(workflow_id, result_type=JourneyResult)
    result = await asyncio.wait_for(handle.result(), timeout=30)
    assert (result.outcome, result.reason) == ("exited", "no_purchase")
    assert [m.template for m in result.messages] == ["cart_reminder", "cart_coupon"]
    assert result.messages[0].clicked

    async def found_by_search_attributes() -> list[Any]:
        query = (
            f"NudgeCustomerId = '{customer}' AND NudgeJourney = 'cart_abandonment' "
            "AND NudgeOutcome = 'exited' AND ExecutionStatus = 'Completed'"
        )
        return [w async for w in client.list_workflows(query)]

    listed = await _wait_for(found_by_search_attributes)
    assert [w.id for w in listed] == [workflow_id]
    assert listed[0].status == WorkflowExecutionStatus.COMPLETED

    # Exactly two messages reached the carrier for this customer: nothing was sent twice.
    async with httpx.AsyncClient(base_url=stack.simulator_url) as sim:
        entries = [m for m in (await sim.get("/_sim/ledger")).json() if m["to"] == phone]
    assert len(entries) == 2


def _cli_env(stack: Stack, **env: str) -> dict[str, str]:
    """The environment under which the CLI talks to this stack, as `make run` users' does to theirs."""
    return {
        **os.environ,
        "NUDGE_PUBLIC_URL": stack.gateway_url,
        "NUDGE_STATE_DIR": str(stack.state_dir),  # where the CLI finds the local admin and codec keys
        "NUDGE_TEMPORAL_ADDRESS": stack.temporal_address,
        **env,
    }


async def _nudge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``nudge ARGS`` in a process of its own, as a user runs it."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _journeys_until(env: dict[str, str], customer: str, text: str) -> str:
    """`nudge journeys CUSTOMER`'s output once it shows ``text`` (30 s at most)."""
    deadline = time.monotonic() + 30
    out = await _nudge(env, "journeys", customer)
    while text not in out.stdout and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        out = await _nudge(env, "journeys", customer)
    assert out.returncode == 0, out.stderr
    assert text in out.stdout, out.stdout
    return out.stdout


async def test_cli_event_and_journeys_show_a_journey_to_its_end(stack: Stack) -> None:
    """`nudge event` for an unknown customer warns and starts a journey; `nudge journeys`, on a
    60-column terminal, lists it by its whole workflow id and snake-case name, running, then done
    with its outcome and reason."""
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    workflow_id = f"journey:onboarding:{customer}"
    env = _cli_env(stack, COLUMNS="60")
    sent = await _nudge(env, "event", customer, "signed_up")
    assert sent.returncode == 0, sent.stderr
    assert workflow_id in sent.stdout, sent.stdout
    assert "started" in sent.stdout
    assert f"the gateway has no customer {customer!r}" in sent.stderr
    assert f"nudge customers add {customer} --phone" in sent.stderr

    out = await _journeys_until(env, customer, workflow_id)
    assert workflow_id in [line.strip() for line in out.splitlines()], "the id is cut or wrapped"
    assert re.search(r"^\s+journey\s+onboarding\s*$", out, re.M), out
    # Running, unless a slow machine's first listing came after the journey's quick end.
    assert "Onboarding" not in out and re.search(r"^\s+status\s+(running|completed)\s*$", out, re.M), out

    # The gate's decision shows per message (an event made this customer, with no phone), and the
    # journey's end shows with its reason, from its result.
    out = await _journeys_until(env, customer, "done:exited (not_activated)")
    assert "blocked (no_phone)" in out and "completed" in out

    bad = await _nudge(env, "event", customer, "Not A Name")
    assert bad.returncode == 2
    assert "422" in bad.stderr


def _readme_playground_commands() -> list[list[str]]:
    """The commands in the README's block for trying Nudge while `make run` is up."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("While `make run` is up", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


async def test_readme_playground_commands_work_as_written(stack: Stack) -> None:
    """The README's commands to try while `make run` is up, run as written: no command fails or
    warns, and the cart reminder is sent, not blocked."""
    commands = _readme_playground_commands()
    assert [c[0] for c in commands] == [".venv/bin/nudge"] * len(commands)
    assert commands[0][1:4] == ["customers", "add", "c42"], "the README adds c42 before its event"
    env = _cli_env(stack)
    for command in commands:
        done = await _nudge(env, *command[1:])
        assert done.returncode == 0, f"{shlex.join(command)}: {done.stderr}"
        assert "warning" not in done.stderr, f"{shlex.join(command)}: {done.stderr}"
    out = await _journeys_until(env, "c42", "cart_reminder: sent")
    assert "journey:cart_abandonment:c42:k1" in out and "blocked" not in out


async def test_cli_customers_import_reports_bad_rows_and_imports_good_files(
    stack: Stack, tmp_path: Path
) -> None:
    """`nudge customers import` rejects a bad phone with its line number, then imports a good file."""
    env = _cli_env(stack)
    tag = uuid.uuid4().hex[:6]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"id,name,phone,tier\nimp1-{tag},Ann,+8613800138021,gold\nimp2-{tag},Ben,12345,\n")
    out = await _nudge(env, "customers", "import", str(bad))
    assert out.returncode == 2
    assert f"bad.csv:3: imp2-{tag}" in out.stderr
    good = tmp_path / "good.csv"
    good.write_text(
        "id,name,phone,tier,consent_source,consent_text\n"
        f"imp1-{tag},Ann,13800138021,gold,crm_import,Offers by SMS\nimp2-{tag},Ben,,,,\n"
    )
    out = await _nudge(env, "customers", "import", str(good))
    assert out.returncode == 0, out.stderr
    assert "imported 2 customers" in out.stdout
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers) as gw:
        ann = (await gw.get(f"/v1/customers/imp1-{tag}")).json()
    assert ann["phone"] == "+8613800138021"
    assert ann["attributes"] == {"tier": "gold"}

    async def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
        return await _nudge(env, "consent", *args)

    shown = await cli_run("show", f"imp1-{tag}")
    assert shown.returncode == 0, shown.stderr
    assert "granted (crm_import)" in shown.stdout and "Offers by SMS" in shown.stdout
    assert "no consent on record" in (await cli_run("show", f"imp2-{tag}")).stdout
    withdrawn = await cli_run("withdraw", f"imp1-{tag}", "--source", "support_email")
    assert withdrawn.returncode == 0, withdrawn.stderr
    trail = (await cli_run("show", f"imp1-{tag}")).stdout
    # The headline shows the withdrawal; the audit trail still holds the import's grant.
    assert "withdrawn (support_email)" in trail and "crm_import" in trail and "support_email" in trail
    unknown = await cli_run("grant", f"nobody-{tag}", "--source", "x")
    assert unknown.returncode == 2 and "unknown customer" in unknown.stderr


def _readable(history_json: str) -> str:
    """A history's JSON with every payload's data (and metadata) decoded from base64 beside it, so
    that text inside a payload can be looked for."""
    texts = [history_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict):
                for value in [*node["metadata"].values(), node.get("data", "")]:
                    with contextlib.suppress(ValueError):
                        texts.append(base64.b64decode(value).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(texts)


async def _temporal_show(stack: Stack, workflow_id: str, *codec: str) -> str:
    """``temporal workflow show --output json`` against the stack's server, as ops run it."""
    command = [
        find_binary("temporal"),
        "workflow",
        "show",
        "-w",
        workflow_id,
        "--output",
        "json",
        "--address",
        stack.temporal_address,
        *codec,
    ]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_history_is_sealed_on_the_server_and_readable_through_the_codec_server(stack: Stack) -> None:
    """A cart journey for a named customer: the history the server stores (the Temporal CLI without a
    codec) has no name, phone or message text; through the gateway's codec server (the CLI's
    --codec-endpoint with the local admin key) the profile and the body read back."""
    customer, phone = f"seal-{uuid.uuid4().hex[:6]}", "+8613800138077"
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.gateway_headers, timeout=30) as gw,
        httpx.AsyncClient(base_url=stack.simulator_url, timeout=30) as sim,
    ):
        profile = {"id": customer, "name": "Ottoline", "phone": phone, "consent": {"source": "e2e_signup"}}
        assert (await gw.put(f"/v1/customers/{customer}", json=profile)).status_code == 200
        event = {"event_id": uuid.uuid4().hex, "customer_id": customer, "name": "cart_abandoned"}
        event["properties"] = {"cart_id": "k9", "url": "https://shop.example.com/cart/k9"}
        assert (await gw.post("/v1/events", json=event)).status_code == 202

        async def reminder() -> list[dict[str, Any]]:
            return [m for m in (await sim.get("/_sim/ledger")).json() if m["to"] == phone]

        [sent, *_] = await _wait_for(reminder)
    assert "Ottoline" in sent["body"]
    workflow_id = CartAbandonment.workflow_id(customer, "k9")

    codec = f"{stack.gateway_url}/codec"
    auth = f"Bearer {stack.api_key}"

    async def decoded() -> str:
        # The profile read is a local activity: it reaches history with the next workflow task.
        shown = _readable(
            await _temporal_show(stack, workflow_id, "--codec-endpoint", codec, "--codec-auth", auth)
        )
        return shown if "Ottoline" in shown else ""

    assert phone in await _wait_for(decoded, timeout=30, every=0.5)
    raw = _readable(await _temporal_show(stack, workflow_id))  # the same history, now without the codec
    for secret in ("Ottoline", phone, phone[3:], "your cart is waiting"):
        assert secret not in raw, secret
    assert "binary/encrypted" in raw
    ui_path = f"{stack.gateway_url}/codec/t/{stack.codec_token}"  # what the stack's UI is pointed at
    assert "Ottoline" in _readable(await _temporal_show(stack, workflow_id, "--codec-endpoint", ui_path))
