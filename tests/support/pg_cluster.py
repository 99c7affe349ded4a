"""A private PostgreSQL cluster owned by one test, so the test may restart it at will.

The shared server other test runs use is never touched. The cluster lives in a temporary
directory, listens on a free loopback port (TCP only: its socket directory is its own), trusts
every local connection, and is stopped and deleted at the end. PostgreSQL refuses to run as
root, so as root (CI) its commands run as the ``postgres`` OS user through ``runuser`` (or
``su``) and the directory is handed to that user; any other user runs them directly.

Missing server binaries are an error with a message saying what to install, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.servers import free_port

OS_USER = "postgres"


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl (or $PATH's)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    for path in candidates:
        if all(os.access(Path(path) / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(path)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise RuntimeError(
        "the PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found under "
        "/usr/lib/postgresql/*/bin or on PATH; install them (Debian/Ubuntu: "
        "apt-get install postgresql) to run the PostgreSQL restart test"
    )


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = find_bin_dir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self._user = pwd.getpwnam(OS_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, PostgreSQL needs an unprivileged OS user to run as; "
                    f"there is no {OS_USER!r} user (installing the postgresql package makes it)"
                ) from None
        self.dir = Path(tempfile.mkdtemp(prefix="minitoolai-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = 0
        if self.as_root:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            if shutil.which("runuser"):
                command = ["runuser", "-u", OS_USER, "--", *command]
            else:
                command = ["su", OS_USER, "-s", "/bin/sh", "-c", shlex.join(command)]
        done = subprocess.run(
            command, cwd=self.dir, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
                f"\n{self.log_tail()}"
            )
        return done

    def _pg_ctl(self, action: str, *args: str) -> None:
        """``pg_ctl <action>``, waiting (up to 60 s) until it is done."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args, action
        )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except (FileNotFoundError, PermissionError):
            return ""

    def start(self) -> None:
        """initdb, then start on a free port; returns when it accepts connections."""
        flags = "-U postgres --auth=trust -E UTF8 --no-sync --no-instructions"
        self._run("initdb", "-D", str(self.data), *flags.split())
        self.port = free_port()
        self._pg_ctl("start", "-o", self._options())

    def _options(self) -> str:
        return (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.dir} -c fsync=off -c max_connections=100 "
            # the WAL writer's longest nap: an asynchronous commit stays in the server's memory
            # until a synchronous one writes the WAL past it, so a crash loses it
            f"-c wal_writer_delay=10000"
        )

    def restart(self, mode: str = "fast") -> float:
        """``pg_ctl restart -m <mode>`` (same port and options); returns the seconds it took."""
        started = time.monotonic()
        self._pg_ctl("restart", "-m", mode)
        return time.monotonic() - started

    def outage(self, seconds: float, mode: str = "fast") -> float:
        """Stop the server, stay down ``seconds``, start it again; returns the time it took."""
        started = time.monotonic()
        self._pg_ctl("stop", "-m", mode)
        time.sleep(seconds)
        self._pg_ctl("start", "-o", self._options())
        return time.monotonic() - started

    def crash(self) -> float:
        """Stop the server as a crash does (``-m immediate``: the WAL still in its memory is
        lost), start it again (it recovers from the WAL on disk); returns the time it took."""
        return self.outage(0.0, "immediate")

    def stop(self) -> None:
        """Stop (immediately: nothing here is worth a checkpoint) and delete the cluster."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
