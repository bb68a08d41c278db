"""A throwaway PostgreSQL server from Debian's binaries, for the tests and the benchmarks.

>>> with PgServer.start() as server:                     # doctest: +SKIP
...     url = server.create_database("t1")           # postgresql+psycopg://postgres@127.0.0.1:PORT/t1

initdb refuses to run as root, so as root the server runs as the ``postgres`` user (``nobody`` when
there is none) through ``runuser``, in a temporary directory it owns; it listens on 127.0.0.1 on a
free port and on a unix socket inside that directory, and trusts local connections (nothing but
this process's tests can reach it in the time it lives). ``stop()`` shuts it down with
``pg_ctl stop -m fast`` and removes the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

SKIP_REASON = ("PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin/initdb); "
               "`make services` installs them")


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has ``initdb`` (or ``$MODELGIT_PG_BIN``)."""
    override = os.environ.get("MODELGIT_PG_BIN")
    if override:
        return Path(override) if (Path(override) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """The user to run the server as: None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


class PgServer:
    def __init__(self, bin_dir: Path, root: Path, port: int, user: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.user = user
        self.data = root / "data"
        self.options = ""

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        proc = subprocess.run([*prefix, str(self.bin_dir / tool), *args], capture_output=True, text=True,
                              cwd=self.root, timeout=120)
        if proc.returncode != 0:
            log = (self.root / "server.log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}")
        return proc

    @classmethod
    def start(cls, *, fsync: bool = False, max_connections: int = 100) -> PgServer:
        """Start a server; ``fsync=False`` (the tests) trades crash safety for speed."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(SKIP_REASON)
        user = _server_user()
        root = Path(tempfile.mkdtemp(prefix="modelgit-pg-"))
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, _free_port(), user)
        try:
            server._run("initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync", "--no-instructions")
            options = (f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c max_connections={max_connections}"
                       f" -c fsync={'on' if fsync else 'off'} -c shared_buffers=64MB")
            if not fsync:
                options += " -c synchronous_commit=off -c full_page_writes=off"
            server.options = options
            server.resume()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def pause(self) -> None:
        """Stop the server but keep its data: clients see it go away (``resume()`` brings it back)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", self.options,
                  "-w", "-t", "60", "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
