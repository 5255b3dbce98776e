"""Test-wide guards: no test can reach real credentials or a real Prefect server by accident."""

from __future__ import annotations

import os

import pytest

# google-cloud-storage 3.17 otherwise fires a hidden background GET of the bucket on first use, which
# shows up in the stand-ins' request logs and request counts.
os.environ["DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"] = "true"

_REAL_WORLD_PREFIXES = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_", "SLACK_", "STORAGE_EMULATOR_HOST")


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch):
    for key in list(os.environ):
        if key.startswith(_REAL_WORLD_PREFIXES):
            monkeypatch.delenv(key)
