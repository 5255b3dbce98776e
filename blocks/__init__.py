"""Prefect block types: configuration and credentials only.

`prefect block register -m blocks` and `opsflows blocks register` register every block type here.
"""

from blocks.environment import (
    CloudRunSettings,
    CloudSqlSettings,
    OpsEnvironment,
    SlackSettings,
    StorageSettings,
)
from blocks.policies import CanaryPolicy, DrillPolicy, RecoveryObjectives, RetentionPolicy

__all__ = [
    "CanaryPolicy",
    "CloudRunSettings",
    "CloudSqlSettings",
    "DrillPolicy",
    "OpsEnvironment",
    "RecoveryObjectives",
    "RetentionPolicy",
    "SlackSettings",
    "StorageSettings",
]
