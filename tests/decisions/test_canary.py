"""Canary verdicts: no data never passes; thresholds fail as soon as there is enough data."""

from __future__ import annotations

import pytest

from tasks.decisions.canary import Probe, Thresholds, judge, p95

T = Thresholds(max_error_rate=0.05, max_p95_latency_ms=2000, min_samples=20)


def probes(n: int, errors: int = 0, latency: float = 10.0) -> list[Probe]:
    return [Probe(ok=i >= errors, latency_ms=latency, status=500 if i < errors else 200) for i in range(n)]


@pytest.mark.parametrize(
    ("window", "over", "passed", "reason"),
    [
        (probes(0), True, False, "no data"),
        (probes(19), True, False, "only 19"),
        (probes(19), False, None, "probing"),
        (probes(20), True, True, "within"),
        (probes(20, errors=1), True, True, "within"),  # exactly 5% is not above 5%
        (probes(20, errors=2), False, False, "error rate 10.0%"),  # fails before the window ends
        (probes(100, latency=2500), False, False, "p95 latency 2500 ms"),
        (probes(3, errors=3), False, None, "probing"),  # not enough data to judge yet
    ],
)
def test_judge(window, over, passed, reason):
    verdict = judge(window, T, window_over=over)
    assert verdict.passed is passed
    assert reason in verdict.reason


@pytest.mark.parametrize(
    ("latencies", "expected"),
    [([], None), ([5], 5), (list(range(1, 101)), 95), (list(range(1, 21)), 19), ([1, 1000], 1000)],
)
def test_p95_nearest_rank(latencies, expected):
    assert p95(latencies) == expected
