"""NUDGE_LOOKUP_GRACES: how long a lost answer stays pending before a resend, per provider."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from nudge.routes import local_routes
from nudge.settings import Settings
from worker import router_for


async def test_a_grace_set_for_a_provider_applies_to_its_routes_only() -> None:
    """Tencent's routes wait 600 s; Aliyun's and Twilio's keep their own defaults (60 s, 30 s)."""
    settings = Settings(routes=local_routes("http://127.0.0.1:9"), lookup_graces={"tencent": 600})
    async with httpx.AsyncClient() as http:
        router = router_for(settings, http)
    graces = {route.config.provider: route.provider.lookup_grace for route in router.routes}
    assert graces == {"aliyun": 60.0, "tencent": 600.0, "twilio": 30.0}


@pytest.mark.parametrize("graces", [{"aliyn": 5}, {"tencent": -1}])
def test_an_unknown_provider_or_a_negative_grace_is_refused(graces: dict[str, float]) -> None:
    """A typo would otherwise be ignored, and the default would silently stay."""
    with pytest.raises(ValidationError):
        Settings(lookup_graces=graces)
