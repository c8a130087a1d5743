"""An import's time zone column: a name that is not a zone rejects its row, whatever the reason
zoneinfo gives (``Asia`` is a folder of zones, a very long name is too long for a file name)."""

from __future__ import annotations

import pytest

from starter.csv_customers import check_chunk


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Asia", "America", "x" * 300, "../etc"])
def test_a_row_whose_zone_is_not_a_zone_is_rejected_alone(zone: str) -> None:
    header = ["id", "phone", "timezone"]
    rows = [["good", "+8613800138000", "Asia/Shanghai"], ["bad", "+8613800138001", zone]]
    checked = check_chunk(header, [2, 3], rows, "CN")
    assert [r.customer_id for r in checked.rejects] == ["bad"]
    assert "timezone" in checked.rejects[0].reason and len(checked.staged) == 1
