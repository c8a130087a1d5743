"""The journey API cannot swallow a template variable, ends a journey in one word when a send
must go out, reads event properties as a typed model, and takes re-entry as a proper type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.testing import JourneyTester, journey_tester
from tests.workflows.sample_journeys import SendsOptionNamedVariables, TypedProperties
from workflows import CartAbandonment, HelpReply, Journey, Onboarding, PaymentSuccess, Reentry


@pytest.fixture
async def samples(env: WorkflowEnvironment) -> AsyncIterator[JourneyTester]:
    async with journey_tester(env, [SendsOptionNamedVariables, TypedProperties]) as tester:
        yield tester


async def test_variables_named_like_options_stay_template_variables(samples: JourneyTester) -> None:
    """``route``, ``variant`` and ``caps`` in params reach the template, and force nothing."""
    run = await samples.start(SendsOptionNamedVariables, customer="o1")
    first = run.requests[0]
    assert first.params == {"route": "r9", "variant": "v9", "caps": "c9"}
    assert (first.route, first.variant, first.caps) == (None, None, [])


async def test_required_send_that_is_refused_ends_the_journey_with_the_reason(samples: JourneyTester) -> None:
    """``required=True``: a refused send ends the journey ``not_sent:<reason>``, and no later
    step runs."""
    samples.carrier.block["must_go"] = "no_consent"
    run = await samples.start(SendsOptionNamedVariables, customer="o2")
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "not_sent:no_consent")
    assert run.sent_templates == ["route_notice", "must_go"]


async def test_required_send_that_goes_out_lets_the_journey_go_on(samples: JourneyTester) -> None:
    run = await samples.start(SendsOptionNamedVariables, customer="o3")
    result = await run.result()
    assert result.outcome == "completed"
    assert run.sent_templates == ["route_notice", "must_go", "after_required"]


async def test_event_properties_are_read_as_a_typed_model(samples: JourneyTester) -> None:
    """``event.parse(Basket)`` gives typed values, with the model's defaults."""
    run = await samples.start(TypedProperties, customer="t1", basket_id="b1", items="3")
    assert run.requests[0].params == {"items": 3, "url": "https://shop.example.com/basket"}
    assert (await run.result()).outcome == "completed"


async def test_properties_that_do_not_fit_end_the_journey_naming_the_fields(samples: JourneyTester) -> None:
    """A missing ``basket_id`` and a non-numeric ``items`` end it ``invalid_event:basket_id,items``
    without a send (the workflow does not fail or retry its task forever)."""
    run = await samples.start(TypedProperties, customer="t2", items="many")
    result = await run.result()
    assert (result.outcome, result.reason) == ("exited", "invalid_event:basket_id,items")
    assert run.sent_templates == []


def test_reentry_is_a_type_and_a_bare_timedelta_means_after() -> None:
    """Each built-in journey's re-entry is a ``Reentry``; a ``timedelta`` is read as a cool-down."""
    assert TypedProperties.reentry == Reentry.after(timedelta(hours=1))
    assert CartAbandonment.reentry.cooldown == timedelta(days=7)
    assert HelpReply.reentry.cooldown == timedelta(minutes=10)
    assert PaymentSuccess.reentry is Reentry.NEVER
    assert Onboarding.reentry is Reentry.NEVER
    assert (str(Reentry.NEVER), str(Reentry.ALWAYS), str(CartAbandonment.reentry)) == (
        "never",
        "always",
        "after 7 d",
    )


@pytest.mark.parametrize(
    ("reentry", "since", "allowed"),
    [
        (Reentry.NEVER, None, True),
        (Reentry.NEVER, timedelta(days=999), False),
        (Reentry.ALWAYS, timedelta(0), True),
        (Reentry.after(timedelta(hours=1)), timedelta(minutes=59), False),
        (Reentry.after(timedelta(hours=1)), timedelta(hours=1), True),
    ],
)
def test_reentry_allows_after_its_cooldown_only(
    reentry: Reentry, since: timedelta | None, allowed: bool
) -> None:
    assert reentry.allows(since_last_entry=since) is allowed


def test_reentry_refuses_what_it_cannot_mean() -> None:
    """A cool-down of zero or less, or a string where a Reentry belongs, fails at class definition."""
    with pytest.raises(ValueError, match="positive"):
        Reentry.after(timedelta(0))
    with pytest.raises(TypeError, match="must be a Reentry"):

        class Stringly(Journey):  # noqa: F841 - defined to fail
            trigger = "x"
            reentry = "never"  # type: ignore[assignment]


def test_every_journey_in_the_library_is_registered_without_a_list() -> None:
    """``JOURNEYS`` holds each class with a ``trigger`` in ``workflows/journeys/*.py``, read here
    from the sources: a new module is picked up with nothing else edited."""
    import ast
    from pathlib import Path

    from workflows import JOURNEYS

    declared = set()
    for path in (Path(__file__).resolve().parents[2] / "workflows" / "journeys").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(s, ast.Assign) and any(getattr(t, "id", "") == "trigger" for t in s.targets)
                for s in node.body
            ):
                declared.add(f"workflows.journeys.{path.stem}.{node.name}")
    assert {f"{j.__module__}.{j.__name__}" for j in JOURNEYS} == declared
    assert len(declared) >= 4


async def test_a_journeys_own_templates_are_seeded_with_the_builtins(sqlite_url: str) -> None:
    """A journey that brings its templates (``templates = (...)``) needs no edit elsewhere: the
    worker's registry starts with them, approved, language variants included."""
    from activities.compliance.registry import Registry
    from nudge.store import create_engine, init_db, session_factory
    from nudge.templates import ApprovalStatus, builtin_templates
    from workflows.journeys import seeded_templates

    engine = create_engine(sqlite_url)
    try:
        await init_db(engine)
        registry = Registry(session_factory(engine), builtins=seeded_templates((TypedProperties,)))
        default, chinese = await registry.get("basket"), await registry.get("basket", "zh")
        assert (default.status, default.variables) == (ApprovalStatus.APPROVED, {"items", "url"})
        assert chinese.body.startswith("购物车")
        assert (await registry.get("cart_reminder")).code == "cart_reminder"  # the built-ins too
        assert len(seeded_templates((TypedProperties,))) == len(builtin_templates()) + 2
    finally:
        await engine.dispose()


def test_a_journey_template_that_reuses_a_code_is_refused_by_name() -> None:
    """A journey's template with a built-in's (or another journey's) code and language would
    break the registry's seeding: it is refused, naming the journey and the code."""
    from nudge.models import Category
    from nudge.templates import Template
    from workflows.journeys import JOURNEYS, seeded_templates

    class Reuses(Journey):
        trigger = "reuse_test"
        templates = (Template("cart_reminder", "${name}: again", Category.MARKETING),)

    class Twice(Journey):
        trigger = "twice_test"
        templates = (Template("basket", "${items}", Category.TRANSACTIONAL, language="zh"),)

    with pytest.raises(ValueError, match="Reuses brings template 'cart_reminder'"):
        seeded_templates((Reuses,))
    with pytest.raises(ValueError, match=r"Twice brings template 'basket' \(zh\), which TypedProperties"):
        seeded_templates((TypedProperties, Twice))
    assert len(seeded_templates(JOURNEYS)) >= len(seeded_templates(()))  # the library's own are fine


def test_transactional_journeys_are_routed_first() -> None:
    """The gateway starts and signals in JOURNEYS order: a payment confirmation goes before the
    marketing journeys' signals for the same ``order_paid``."""
    from nudge.models import Category
    from workflows import JOURNEYS

    categories = [journey.category for journey in JOURNEYS]
    assert categories == sorted(categories, key=lambda c: c is not Category.TRANSACTIONAL)
    assert JOURNEYS.index(PaymentSuccess) < JOURNEYS.index(Onboarding)


def test_a_cooldown_on_an_intermediate_base_class_is_inherited() -> None:
    from datetime import timedelta as td

    class Base(Journey):
        reentry = td(days=1)  # type: ignore[assignment]

    class Child(Base):
        trigger = "child_test"

    assert Child.reentry == Reentry.after(td(days=1))
