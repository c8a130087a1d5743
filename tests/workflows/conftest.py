from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from nudge.testing import JourneyTester, journey_tester, time_skipping_environment
from workflows import JOURNEYS


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_environment() as environment:
        yield environment


@pytest.fixture
async def journeys(env: WorkflowEnvironment) -> AsyncIterator[JourneyTester]:
    async with journey_tester(env, JOURNEYS) as tester:
        yield tester
