from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.testing import JourneyTester, journey_tester
from workflows import JOURNEYS


@pytest.fixture
async def journeys(env: WorkflowEnvironment) -> AsyncIterator[JourneyTester]:
    async with journey_tester(env, JOURNEYS) as tester:
        yield tester
