"""The README's journey example is real code: it defines a valid journey with the API as it is."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from workflows import Journey, Reentry
from workflows.journeys import seeded_templates


def test_the_readme_journey_example_defines_a_journey() -> None:
    """Executed as written: a Journey with its trigger, key, goal, re-entry and templates."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Writing a journey", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    journey = namespace["CartAbandonment"]
    assert issubclass(journey, Journey)
    assert (journey.trigger, journey.key, journey.goal) == ("cart_abandoned", "cart_id", "order_paid")
    assert journey.reentry == Reentry.after(timedelta(days=7))
    assert [t.code for t in journey.templates] == ["cart_nudge"]
    assert journey.templates[0].variables == {"name", "cart_url"}
    assert journey.templates[0] in seeded_templates((journey,))  # seedable: its code is its own
