"""Admission: which synthesized phrases earn a place in storage (pure)."""

from __future__ import annotations

from audiocache.cache.privacy import personal_data_reason
from audiocache.errors import InvalidInput
from audiocache.models import AdmissionPolicy, Agent

MODES = ("default", "always", "never", "min_hits")
PERSONAL_DATA_MODES = ("skip", "cache")
SKIPPED_HEADER = "X-Audio-Cache-Skipped"  # on a runtime answer whose phrase is not stored


def policy_for(agent: Agent, default: AdmissionPolicy) -> AdmissionPolicy:
    if agent.admission == "always":
        return AdmissionPolicy("always")
    if agent.admission == "never":
        return AdmissionPolicy("never")
    if agent.admission == "min_hits":
        return AdmissionPolicy(
            "min_hits",
            agent.admission_min_hits or default.min_hits,
            agent.admission_window_seconds or default.window_seconds,
        )
    return default


def needs_counting(policy: AdmissionPolicy) -> bool:
    return policy.mode == "min_hits" and policy.min_hits > 1


def admits(policy: AdmissionPolicy, requests_in_window: int) -> bool:
    if policy.mode == "always":
        return True
    if policy.mode == "never":
        return False
    return requests_in_window >= policy.min_hits


def validate_policy(
    mode: str, min_hits: int | None, window_seconds: int | None, personal_data: str = "skip"
) -> None:
    if personal_data not in PERSONAL_DATA_MODES:
        raise InvalidInput(f"personalData must be one of {', '.join(PERSONAL_DATA_MODES)}")
    if mode not in MODES:
        raise InvalidInput(f"admission must be one of {', '.join(MODES)}")
    if mode == "min_hits":
        if min_hits is None or not 1 <= min_hits <= 1_000_000:
            raise InvalidInput("minHits must be between 1 and 1000000")
        if window_seconds is None or not 1 <= window_seconds <= 366 * 86400:
            raise InvalidInput("windowSeconds must be between 1 and 31622400")


def personal_skip(agent: Agent, text: str) -> str | None:
    """Why a runtime phrase of ``agent`` must not be stored or counted (the personal-data
    reason), or None. Uploads and explicit warm-ups do not ask: an operator chose to keep those."""
    if agent.personal_data == "cache":
        return None
    return personal_data_reason(text)


def skipped_header(reason: str) -> dict[str, str]:
    return {SKIPPED_HEADER: f"personal-data; reason={reason}"}
