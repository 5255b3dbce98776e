"""Pure decisions: traffic plans, canary verdicts, replication diffs, retention picks, recovery points.

No I/O in here. Flows and tasks feed them what was read; tests drive them with plain tables.
"""
