"""The policies an environment sets: canary analysis, backup retention, recovery objectives, drills.

Defaults come from the runbooks these flows replace (../shared/seeds): canary 10% → 50% → 100%,
roll back when the error rate passes 5% or p95 latency passes 2 s, health checks of 10 attempts.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


def check_canary_steps(steps: list[int]) -> list[int]:
    """Steps are traffic percentages: strictly increasing, each in 1..100, ending at 100."""
    if not steps:
        raise ValueError("canary steps are empty; expected e.g. [10, 50, 100]")
    if any(not 0 < step <= 100 for step in steps):
        raise ValueError(f"canary steps must each be between 1 and 100 percent, got {steps}")
    if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)):
        raise ValueError(f"canary steps must be strictly increasing, got {steps}")
    if steps[-1] != 100:
        raise ValueError(f"canary steps must end at 100 (full promotion), got {steps}")
    return steps


class CanaryPolicy(BaseModel):
    """How a deploy moves traffic to a new revision and when it rolls back."""

    steps: list[int] = Field(
        default=[10, 50, 100],
        description="Traffic percentages for the new revision, strictly increasing, ending at 100.",
    )
    soak_seconds: float = Field(
        default=120, ge=0, description="How long each step is watched (actively probed) before the next one."
    )
    probe_interval_seconds: float = Field(
        default=0.5, gt=0, description="Pause between two probe requests to the candidate during a soak."
    )
    max_error_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Roll back when more than this fraction of probes fail (0.05 = 5%).",
    )
    max_p95_latency_ms: float = Field(
        default=2000, gt=0, description="Roll back when the 95th percentile probe latency passes this (ms)."
    )
    min_samples: int = Field(
        default=20,
        ge=1,
        description="A soak window with fewer probe results than this fails: no data is not a pass.",
    )
    health_path: str = Field(default="/health", description="Path of the health endpoint on the service.")
    health_attempts: int = Field(
        default=10, ge=1, description="Health check attempts on the candidate's tagged URL before giving up."
    )
    health_interval_seconds: float = Field(
        default=3, ge=0, description="Pause between health check attempts."
    )
    ready_deadline_seconds: float = Field(
        default=300, gt=0, description="A new revision that is not Ready within this time fails the deploy."
    )
    approval_timeout_seconds: float = Field(
        default=1800, gt=0, description="How long the approval gate before 100% waits; no answer rolls back."
    )
    lock_timeout_seconds: float = Field(
        default=900,
        gt=0,
        description="How long a deploy or rollback waits for another one on the same service.",
    )

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, steps: list[int]) -> list[int]:
        return check_canary_steps(steps)


class RetentionPolicy(BaseModel):
    """Grandfather-father-son retention of verified exports, and a cap on on-demand backup runs."""

    keep_daily: int = Field(default=7, ge=0, description="Keep the newest export of each of the last N days.")
    keep_weekly: int = Field(
        default=4, ge=0, description="Keep the newest export of each of the last N weeks."
    )
    keep_monthly: int = Field(
        default=12, ge=0, description="Keep the newest export of each of the last N months."
    )
    minimum_keep: int = Field(
        default=3, ge=1, description="Never keep fewer exports than this, whatever the schedule says."
    )
    keep_on_demand_backup_runs: int = Field(
        default=7,
        ge=1,
        description="On-demand backup runs created by opsflows to keep (automated backups are never touched).",
    )


class RecoveryObjectives(BaseModel):
    """The recovery objectives a restore drill measures against."""

    rto_seconds: float = Field(
        default=4 * 3600, gt=0, description="Recovery time objective: drill start to a validated restore (s)."
    )
    # The seeds promise an RPO of 1 h, which needs point-in-time recovery; nightly exports can only
    # promise a day, so the default says what the exports can prove.
    rpo_seconds: float = Field(
        default=26 * 3600, gt=0, description="Recovery point objective: the restored data's maximum age (s)."
    )


class DrillPolicy(BaseModel):
    """How the monthly restore drill builds and checks its scratch instance."""

    scratch_tier: str = Field(default="db-custom-1-3840", description="Machine tier of the scratch instance.")
    orphan_ttl_hours: float = Field(
        default=24, gt=0, description="Scratch instances of earlier drills older than this are deleted."
    )
    row_count_tolerance: dict[str, float] = Field(
        default_factory=dict,
        description="Per-table allowed relative difference of row counts (0.01 = 1%), for live-written tables.",
    )
    sql_checks: dict[str, str] = Field(
        default_factory=dict,
        description="Named SQL queries that must each return true on the restored database.",
    )
