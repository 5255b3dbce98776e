"""Test-wide guards: no test can reach real credentials or a real Prefect server by accident."""

from __future__ import annotations

import os

import pytest

_REAL_WORLD_PREFIXES = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_", "SLACK_", "STORAGE_EMULATOR_HOST")


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch):
    for key in list(os.environ):
        if key.startswith(_REAL_WORLD_PREFIXES):
            monkeypatch.delenv(key)
