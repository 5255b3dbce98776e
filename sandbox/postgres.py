"""Private PostgreSQL clusters for the sandbox: initdb + pg_ctl in a project-local directory.

`initdb` refuses to run as root, and our machines and CI run as root: the server commands then run as
an unprivileged user (`runuser -u postgres`), while clients (psql, pg_dump, psycopg) stay as they are
and connect over TCP on loopback. A cluster is found again from its directory (`postmaster.pid`), never
from memory, so `sandbox down` can stop what an earlier process started.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.http import LOOPBACK

SUPERUSER = "postgres"
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them with "
    "`sudo apt-get install -y postgresql` (Debian/Ubuntu) or `brew install postgresql@15` (macOS), "
    "or put their directory on PATH."
)


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def server_bindir() -> Path:
    """Where initdb/pg_ctl live: PATH first, then Debian's versioned directories (newest first)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent if Path(found).resolve().name == "initdb" else Path(found).parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    for candidate in debian:
        if (candidate / "initdb").exists():
            return candidate
    raise PostgresMissing(INSTALL_HINT)


def client_tool(name: str) -> str:
    """Path of a client tool (psql, pg_dump) matching the server's major version where possible."""
    local = server_bindir() / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise PostgresMissing(INSTALL_HINT)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def server_user() -> str | None:
    """The unprivileged user that runs the server when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "opsflows-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "opsflows-pg"], check=True)
    return "opsflows-pg"


@dataclass
class PostgresCluster:
    """One private cluster living in `directory` (data and log inside it), listening on `address`.

    No Unix socket: clients use TCP on loopback, and a socket path inside a deep state directory can
    pass the 107-byte limit.
    """

    directory: Path
    address: str = LOOPBACK

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def port(self) -> int | None:
        """The port of the running server, read back from postmaster.pid; None when stopped."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        if len(lines) < 4:
            return None
        try:
            os.kill(int(lines[0]), 0)
        except (ProcessLookupError, ValueError):
            return None
        return int(lines[3])

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        port = self.port
        if port is None:
            raise RuntimeError(f"PostgreSQL in {self.directory} is not running")
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.address}:{port}/{dbname}"

    def as_server_user(self, *command: str) -> list[str]:
        user = server_user()
        return ["runuser", "-u", user, "--", *command] if user else list(command)

    def start(self, port: int | None = None) -> int:
        """Create (first time) and start the cluster; harmless when it already runs. Returns the port."""
        running = self.port
        if running is not None:
            return running
        bindir = server_bindir()
        self.directory.mkdir(parents=True, exist_ok=True)
        user = server_user()
        if user:
            shutil.chown(self.directory, user)
            self.check_reachable_by(user)
        if not (self.data / "PG_VERSION").exists():
            self.run_as_server(
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            )
        port = port or free_port()
        options = (
            f"-p {port} -c listen_addresses={self.address} -c unix_socket_directories='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c shared_buffers=32MB"
        )
        self.run_as_server(
            str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start"
        )
        return port

    def run_as_server(self, *command: str) -> None:
        """Run a server command (initdb, pg_ctl) as the server user; raise with its output on failure."""
        done = subprocess.run(self.as_server_user(*command), capture_output=True, text=True, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(command[0]).name} failed for {self.directory} (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )

    def check_reachable_by(self, user: str) -> None:
        # A 0700 parent (mkdtemp, pytest's tmp_path) hides the directory from the server user.
        blocked = [p for p in self.directory.parents if os.stat(p).st_mode & 0o001 == 0]
        if blocked:
            raise RuntimeError(
                f"PostgreSQL runs as '{user}' (initdb refuses root) but cannot reach {self.directory}: "
                f"{blocked[0]} is not searchable by other users (chmod o+x it, or use another directory)"
            )

    def stop(self, mode: str = "fast") -> None:
        if self.port is None:
            return
        subprocess.run(
            self.as_server_user(
                str(server_bindir() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
            ),
            check=False,
            capture_output=True,
            cwd="/",
        )

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
