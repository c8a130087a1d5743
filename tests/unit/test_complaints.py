"""The complaint breaker's policy as the settings give it, and which receipt codes count."""

from __future__ import annotations

from datetime import timedelta

from activities.compliance.complaints import ComplaintPolicy, ComplaintRecorder
from nudge.settings import Settings
from nudge.store import create_engine, session_factory


def test_complaint_policy_from_settings_takes_every_complaint_setting() -> None:
    """Each NUDGE_COMPLAINT_* setting lands in its policy field, the codes as frozensets."""
    settings = Settings(
        complaint_window=timedelta(hours=6),
        complaint_attribution=timedelta(hours=48),
        complaint_threshold=0.05,
        complaint_min_volume=250,
        complaint_codes={"twilio": ["30007"], "tencent": ["1016", "1017"]},
    )
    assert ComplaintPolicy.from_settings(settings) == ComplaintPolicy(
        window=timedelta(hours=6),
        attribution=timedelta(hours=48),
        threshold=0.05,
        min_volume=250,
        receipt_codes={"twilio": frozenset({"30007"}), "tencent": frozenset({"1016", "1017"})},
    )


def test_complaint_recorder_counts_only_the_providers_listed_codes() -> None:
    """Without a policy the recorder counts Twilio's 30004 and 30007, not another code, another
    provider's code, nor a receipt without one."""
    recorder = ComplaintRecorder(session_factory(create_engine("sqlite+aiosqlite://")))
    assert [recorder.counts("twilio", code) for code in ("30004", "30007", "30003", None)] == [
        True,
        True,
        False,
        False,
    ]
    assert recorder.counts("aliyun", "30007") is False
