"""Canary analysis: is the candidate good enough, judged from the probes the flow itself sent?

No data is never a pass (the classic complaint about Flagger and Kayenta: a canary that receives no
traffic "passes" on empty metrics). A window fails as soon as it has enough samples and breaks a
threshold, so a bad candidate is caught within one probe interval of the failing sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    ok: bool
    latency_ms: float
    status: int | None = None  # None when no HTTP answer came back (timeout, refused)


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float
    max_p95_latency_ms: float
    min_samples: int


@dataclass(frozen=True)
class Verdict:
    passed: bool | None  # None: not decided yet, keep probing
    samples: int
    errors: int
    error_rate: float | None
    p95_ms: float | None
    reason: str

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "samples": self.samples,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
            "reason": self.reason,
        }


def p95(latencies: list[float]) -> float | None:
    """95th percentile by nearest rank (no interpolation: it is a value that was measured)."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def judge(probes: list[Probe], thresholds: Thresholds, window_over: bool) -> Verdict:
    samples = len(probes)
    errors = sum(1 for probe in probes if not probe.ok)
    error_rate = errors / samples if samples else None
    p95_ms = p95([probe.latency_ms for probe in probes])

    def verdict(passed: bool | None, reason: str) -> Verdict:
        return Verdict(passed, samples, errors, error_rate, p95_ms, reason)

    if samples >= thresholds.min_samples:
        if error_rate > thresholds.max_error_rate:
            return verdict(False, f"error rate {error_rate:.1%} above {thresholds.max_error_rate:.1%}")
        if p95_ms > thresholds.max_p95_latency_ms:
            return verdict(False, f"p95 latency {p95_ms:.0f} ms above {thresholds.max_p95_latency_ms:.0f} ms")
    if not window_over:
        return verdict(None, "probing")
    if samples < thresholds.min_samples:
        return verdict(
            False,
            f"only {samples} probe results, at least {thresholds.min_samples} needed (no data is a fail)",
        )
    return verdict(True, "within thresholds")
