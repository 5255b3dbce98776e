"""The `opsflows` command: the sandbox, the audit trail and the block types.

Exit codes: 0 when all is well; non-zero with a one-line reason on stderr otherwise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli import sandbox_process

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Runbooks as code for Google Cloud.")
sandbox_app = typer.Typer(no_args_is_help=True, help="The local stand-ins every flow and test runs on.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail of every run.")
blocks_app = typer.Typer(no_args_is_help=True, help="Prefect block types.")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(audit_app, name="audit")
app.add_typer(blocks_app, name="blocks")

StateDir = Annotated[
    Path | None, typer.Option(help="Sandbox state directory (default: $OPSFLOWS_SANDBOX_DIR or ./.sandbox).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the sandbox description as one JSON object.")]


def fail(reason: str) -> None:
    typer.echo(f"opsflows: {reason}", err=True)
    raise typer.Exit(1)


def _print_description(description: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(description, indent=2))
        return
    typer.echo(f"sandbox up (pid {description['pid']}, state in {description['state_dir']})")
    for key in ("run_api", "sqladmin_api", "storage_api", "slack_api", "postgres_dsn"):
        typer.echo(f"  {key:<13} {description[key]}")
    typer.echo(f"  services      {', '.join(description['services'])}")
    typer.echo(f"  instances     {', '.join(description['instances'])}")
    typer.echo(f"  buckets       {description['buckets']['primary']} -> {description['buckets']['dr']}")
    typer.echo(f"  environment   ops-environment/{description['environment']}")


@sandbox_app.command("up")
def sandbox_up(
    as_json: AsJson = False,
    state_dir: StateDir = None,
    register: Annotated[
        bool, typer.Option(help="Save the `sandbox` environment block to the configured Prefect API.")
    ] = True,
) -> None:
    """Start the sandbox (harmless when it already runs) and register its environment block."""
    directory = state_dir or sandbox_process.default_state_dir()
    try:
        description = sandbox_process.start(directory)
    except RuntimeError as exc:
        fail(str(exc))
    if register:
        from prefect.settings import PREFECT_API_URL

        from blocks import OpsEnvironment
        from cli.sandbox_env import sandbox_environment

        OpsEnvironment.register_type_and_schema()
        sandbox_environment(description).save(description["environment"], overwrite=True)
        description["prefect_api"] = PREFECT_API_URL.value()  # None: Prefect's ephemeral local server
    _print_description(description, as_json)


@sandbox_app.command("down")
def sandbox_down(state_dir: StateDir = None) -> None:
    """Stop the sandbox and everything it started."""
    directory = state_dir or sandbox_process.default_state_dir()
    stopped = sandbox_process.stop(directory)
    typer.echo("sandbox stopped" if stopped else "sandbox was not running")


@sandbox_app.command("status")
def sandbox_status(as_json: AsJson = False, state_dir: StateDir = None) -> None:
    """Say whether the sandbox runs (exit 1 when it does not)."""
    description = sandbox_process.running_description(state_dir or sandbox_process.default_state_dir())
    if description is None:
        fail("the sandbox is not running (start it with `opsflows sandbox up`)")
    _print_description(description, as_json)


def _audit_store(environment: str, dsn: str | None):
    from tasks.audit import AuditStore

    if dsn:
        return AuditStore(dsn)
    from tasks.clients import load_environment

    try:
        return AuditStore(load_environment(environment).audit_dsn.get_secret_value())
    except ValueError as exc:
        fail(f"cannot find the audit store of environment {environment!r}: {exc}")


StoreOf = Annotated[str, typer.Option("--store-of", help="Environment block whose audit store to read.")]
Dsn = Annotated[str | None, typer.Option(help="Audit store PostgreSQL URL (instead of --store-of).")]


@audit_app.command("list")
def audit_list(
    flow: Annotated[str | None, typer.Option(help="Only records of this flow.")] = None,
    environment: Annotated[str | None, typer.Option(help="Only records of this environment.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date/time, or a duration like 24h or 7d.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    store_of: StoreOf = "sandbox",
    dsn: Dsn = None,
) -> None:
    """List audit records, oldest first."""
    store = _audit_store(store_of, dsn)
    records = store.records(flow=flow, environment=environment, since=_parse_since(since) if since else None)
    for record in records:
        if as_json:
            typer.echo(json.dumps(record, default=str))
            continue
        typer.echo(
            f"{record['seq']:>6} {record['recorded_at']:%Y-%m-%d %H:%M:%S} {record['event']:<8} "
            f"{record['flow']:<18} {record['environment'] or '-':<11} {record['outcome']:<10} "
            f"{record['trigger'] or '-'} / {record['actor'] or 'unknown'}"
            + (f"  error: {record['error']}" if record["error"] else "")
        )


def _parse_since(value: str) -> datetime:
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r} is neither an ISO date/time nor a duration like 24h")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@audit_app.command("verify")
def audit_verify(store_of: StoreOf = "sandbox", dsn: Dsn = None) -> None:
    """Check the hash chain; exit 1 naming the first broken record."""
    check = _audit_store(store_of, dsn).verify()
    if not check.ok:
        fail(f"audit trail broken at record {check.first_broken_seq}: {check.reason}")
    typer.echo(f"audit trail intact: {check.records} records")


@blocks_app.command("register")
def blocks_register() -> None:
    """Register opsflows' block types with the configured Prefect API."""
    from prefect_gcp import GcpCredentials

    from blocks import OpsEnvironment

    for block_type in (GcpCredentials, OpsEnvironment):
        block_type.register_type_and_schema()
        typer.echo(f"registered {block_type.get_block_type_slug()}")


@app.command("demo")
def demo(
    keep: Annotated[
        bool, typer.Option(help="Leave the Prefect server, worker and sandbox up to browse the runs.")
    ] = False,
    state_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its server, sandbox and logs.")
    ] = Path(".demo"),
) -> None:
    """Run the whole story on the sandbox through a real Prefect server; exit 1 if any outcome differs."""
    from cli.demo import run_demo

    try:
        ok = run_demo(state_dir.resolve(), keep)
    except Exception as exc:  # noqa: BLE001 - one line on stderr, per the CLI contract
        fail(f"demo failed: {type(exc).__name__}: {exc}")
    if not ok:
        fail("some outcomes were not as expected (see the table above)")


if __name__ == "__main__":
    app()
