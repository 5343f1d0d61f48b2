"""A throwaway PostgreSQL cluster: initdb, pg_ctl start and stop, nothing else.

No dependency beyond the standard library, so ``.ci/run`` starts the tests' cluster with
it before the test environment is installed::

    python3 tests/pg_throwaway.py start DIR   # prints the URL (also written to DIR/url)
    python3 tests/pg_throwaway.py stop DIR

``initdb``/``pg_ctl`` come from PATH or ``/usr/lib/postgresql/*/bin`` (where Debian puts
them). As root the server runs as the ``postgres`` user (PostgreSQL refuses to run as
root) in a directory it owns. It listens on 127.0.0.1 on a free port and on a unix socket
in DIR, with settings for tests only: no fsync, trust authentication.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


class Unavailable(Exception):
    """PostgreSQL cannot be started here."""


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_user() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


@dataclass
class Cluster:
    """A cluster this process started: its directory, port and the user it runs as."""

    root: Path
    port: int
    user: str | None  # the system user the server runs as (None: this one)
    pg_ctl: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=timeout, check=False
        )

    @classmethod
    def start(cls, root: Path | None = None) -> Cluster:
        initdb, pg_ctl = find_tool("initdb"), find_tool("pg_ctl")
        if not initdb or not pg_ctl:
            raise Unavailable("initdb/pg_ctl not found on PATH or under /usr/lib/postgresql")
        user = _server_user()
        root = Path(root or tempfile.mkdtemp(prefix="aigre-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        if user:
            import pwd

            try:
                owner = pwd.getpwnam(user)
            except KeyError:
                raise Unavailable("running as root and there is no `postgres` user") from None
            os.chown(root, owner.pw_uid, owner.pw_gid)
        root.chmod(0o755)
        cluster = cls(root, free_port(), user, pg_ctl)
        done = cluster._run(
            initdb, "-D", str(root / "data"), "-U", "postgres", "--auth=trust", "--no-sync",
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {' '.join(done.stderr.split())[-300:]}")
        cluster.start_again()
        return cluster

    def start_again(self) -> None:
        """Start the server (first, or again after ``stop``) on the same port."""
        settings = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.root} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB"
        )
        log = self.root / "server.log"
        done = self._run(
            self.pg_ctl, "-D", str(self.root / "data"), "-l", str(log), "-o", settings,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
            raise Unavailable(f"pg_ctl start failed: {' '.join((done.stderr + tail).split())}")

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: pg_throwaway.py start|stop DIR", file=sys.stderr)
        return 2
    where = Path(argv[1])
    if argv[0] == "start":
        try:
            cluster = Cluster.start(where)
        except (Unavailable, OSError, subprocess.SubprocessError) as exc:
            print(f"cannot start PostgreSQL: {exc}", file=sys.stderr)
            return 1
        (where / "url").write_text(cluster.url + "\n")
        print(cluster.url)
        return 0
    Cluster(where, 0, _server_user(), find_tool("pg_ctl") or "pg_ctl").stop("immediate")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
