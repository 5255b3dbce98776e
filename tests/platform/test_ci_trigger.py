"""CI's path: `prefect deployment run 'deploy/sandbox' --param ... --watch` against a real server + worker."""

from __future__ import annotations

import json

from tests.flows.helpers import service_traffic


def test_ci_watch_exits_0_for_a_good_image_and_non_zero_after_an_automatic_rollback(
    platform, sandbox, service
):
    platform.save_environment(sandbox.environment)
    good = platform.prefect(
        "deployment",
        "run",
        "deploy/sandbox",
        "--param",
        f"service={service}",
        "--param",
        f"image=sandbox/{service}:v2",
        "--param",
        "requested_by=ci",
        "--watch",
    )
    assert good.returncode == 0, good.stdout[-2000:]
    promoted = service_traffic(sandbox, service)

    bad = platform.prefect(
        "deployment",
        "run",
        "deploy/sandbox",
        "--param",
        f"service={service}",
        "--param",
        f"image=sandbox/{service}:v3",
        "--param",
        "env=" + json.dumps({"SANDBOX_ERROR_RATE": "0.5"}),
        "--watch",
    )
    assert bad.returncode != 0
    assert "Failed" in bad.stdout or "FAILED" in bad.stdout
    assert service_traffic(sandbox, service) == promoted  # the automatic rollback put it back
