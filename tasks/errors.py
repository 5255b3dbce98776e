"""Every error opsflows raises on purpose, drawn as one tree so a caller catches exactly what it means.

    OpsflowsError                    anything opsflows refuses or finds wrong
    ├── InvalidInput                 a parameter or block field is wrong; nothing was changed
    ├── UnsafeOperation              the change would destroy or hide something; nothing was changed
    ├── VerificationFailed           a check after (or during) a change did not hold
    │   └── CanaryFailed             the candidate revision failed its health or soak analysis
    ├── ObjectiveMissed              a recovery objective (RTO / RPO) was not met
    └── OperationFailed              a Google long-running operation ended with an error

Messages say what was expected, what was found, and what was left unchanged.
"""


class OpsflowsError(Exception):
    """Base of every error opsflows raises on purpose."""


class InvalidInput(OpsflowsError, ValueError):
    """A parameter or configuration value is wrong; raised before anything changes."""


class UnsafeOperation(OpsflowsError):
    """The requested change would destroy or hide data or traffic; refused, nothing changed."""


class VerificationFailed(OpsflowsError):
    """A check did not hold: checksum, health, row count, schema, traffic."""


class CanaryFailed(VerificationFailed):
    """The candidate revision failed its health check or a soak window's analysis."""


class ObjectiveMissed(OpsflowsError):
    """A recovery objective (RTO or RPO) was not met."""


class OperationFailed(OpsflowsError):
    """A Google long-running operation finished with an error."""
