"""Throwaway real servers for the test session: a PostgreSQL cluster and Ceph's radosgw (S3).

Both start on free loopback ports in a folder of their own and are stopped at the end of
the session. Locally a missing part skips the tests that need it; under ``CI=true`` it fails
them loudly (see ``require_tool``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from support import free_port, require_tool

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{' '.join(args)} failed: {exc.stderr or exc.stdout}") from exc


class PostgresCluster:
    """``initdb`` + ``pg_ctl`` as the ``postgres`` user (PostgreSQL refuses to run as root).

    Its folder is made here, not under pytest's tmp_path: that one is private to root."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="audiocache-pg-"))
        self.data = self.root / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)

    def start(self) -> PostgresCluster:
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            require_tool("initdb")  # skips or fails with the make-test hint
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        _run(
            self._as_postgres(
                str(initdb),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        )
        self._pg_ctl("start", "-l", str(self.root / "log.txt"), "-o", self._options())
        return self

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )

    def _pg_ctl(self, action: str, *args: str) -> None:
        _run(self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args, "-w", action))

    def url_of(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return _run(
            self._as_postgres(
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            )
        ).stdout

    def create_template(self, name: str) -> str:
        """A database with the schema migrated to head, to copy per test."""
        import asyncio

        from audiocache.storage.db import Database

        self.psql(f'CREATE DATABASE "{name}"')

        async def migrate() -> None:
            db = Database(self.url_of(name))
            try:
                await db.migrate()
            finally:
                await db.close()

        asyncio.run(migrate())
        return name

    def create_database(self, name: str, template: str | None = None) -> str:
        # FILE_COPY: a small template is copied faster than WAL-logged block by block
        suffix = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{suffix}')
        return self.url_of(name)

    def dump(self, database: str, path: Path) -> None:
        """``pg_dump -Fc`` (the backup the deployment guide describes)."""
        args = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        tmp = self.root / f"{database}.dump"
        _run(self._as_postgres(str(PG_BIN / "pg_dump"), *args, "-Fc", "-f", str(tmp), database))
        path.write_bytes(tmp.read_bytes())

    def restore(self, database: str, path: Path) -> str:
        tmp = self.root / path.name
        tmp.write_bytes(path.read_bytes())
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres", "postgres")
        self.psql(f'CREATE DATABASE "{database}"')
        args = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database]
        _run(self._as_postgres(str(PG_BIN / "pg_restore"), *args, "--no-owner", str(tmp)))
        return self.url_of(database)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast", "-o", self._options())

    def stop_server(self) -> None:
        """Stop the server, keeping its data (``start_server`` brings it back)."""
        self._pg_ctl("stop", "-m", "fast")

    def start_server(self) -> None:
        self._pg_ctl("start", "-l", str(self.root / "log.txt"), "-o", self._options())

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(RuntimeError):
                self._pg_ctl("stop", "-m", "fast")
        shutil.rmtree(self.root, ignore_errors=True)


_CEPH_CONF = """[global]
fsid = {fsid}
mon initial members = a
mon host = v2:127.0.0.1:{mon_port}
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail crit = 0
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
keyring = {d}/keyring
pid file = {d}/run/$name.pid
[mon]
mon data = {d}/mon/$name
[osd]
osd objectstore = memstore
memstore device bytes = 1073741824
osd data = {d}/osd$id
osd max object name len = 256
osd max object namespace len = 64
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {d}/rgw
rgw dns name = localhost
"""


class DatabaseFactory:
    """Copies of a template database made ahead of time by a background thread.

    A copy costs a few hundred milliseconds; made while the previous test runs, a test only
    waits when it outpaces the thread. Used copies are dropped by the same thread."""

    def __init__(self, cluster: PostgresCluster, template: str, *, ahead: int = 2) -> None:
        self.cluster, self.template = cluster, template
        self._ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self._used: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="db-factory", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """The name of a fresh copy."""
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                return self._ready.get(timeout=1)
        raise RuntimeError("the database factory thread died; see the PostgreSQL log")

    def give_back(self, name: str) -> None:
        self._used.put(name)

    def _work(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(queue.Empty):
                while True:
                    used = self._used.get_nowait()
                    if used is not None:
                        self.cluster.drop_database(used)
            if self._ready.full():
                with contextlib.suppress(queue.Empty):
                    used = self._used.get(timeout=0.05)
                    if used is not None:
                        self.cluster.drop_database(used)
                continue
            name = f"t_{uuid.uuid4().hex[:16]}"
            self.cluster.create_database(name, template=self.template)
            self._ready.put(name)

    def close(self) -> None:
        self._stopping.set()
        self._used.put(None)
        self._thread.join(timeout=30)


class Radosgw:
    """A single-node Ceph (mon + memstore osd) with radosgw in front: a real S3 server."""

    access_key = "audiocacheaccess"
    secret_key = "audiocachesecret123"
    region = "us-east-1"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mon_port = free_port()
        self.port = free_port()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def _conf(self) -> list[str]:
        return ["-c", str(self.root / "ceph.conf")]

    def start(self, timeout: float = 90.0) -> Radosgw:
        for tool in ("ceph-mon", "ceph-osd", "radosgw", "ceph", "monmaptool", "ceph-authtool"):
            require_tool(tool)
        d = self.root
        for sub in ("mon", "osd0", "run", "log", "rgw"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        (d / "ceph.conf").write_text(
            _CEPH_CONF.format(fsid=fsid, d=d, mon_port=self.mon_port, rgw_port=self.port)
        )
        keyring = str(d / "keyring")
        _run(
            [
                "ceph-authtool",
                "--create-keyring",
                keyring,
                "--gen-key",
                "-n",
                "mon.",
                "--cap",
                "mon",
                "allow *",
            ]
        )
        _run(
            [
                "ceph-authtool",
                keyring,
                "--gen-key",
                "-n",
                "client.admin",
                "--cap",
                "mon",
                "allow *",
                "--cap",
                "osd",
                "allow *",
                "--cap",
                "mgr",
                "allow *",
            ]
        )
        monmap = str(d / "monmap")
        _run(
            [
                "monmaptool",
                "--create",
                "--add",
                "a",
                f"v2:127.0.0.1:{self.mon_port}",
                "--fsid",
                fsid,
                monmap,
            ]
        )
        _run(
            ["ceph-mon", *self._conf, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring]
        )
        _run(["ceph-mon", *self._conf, "-i", "a"])
        osd_uuid = str(uuid.uuid4())
        osd_id = _run(["ceph", *self._conf, "osd", "new", osd_uuid], timeout=60).stdout.strip()
        _run(["ceph-osd", *self._conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid])
        _run(["ceph-osd", *self._conf, "-i", osd_id])
        deadline = time.monotonic() + timeout
        while "1 up" not in _run(["ceph", *self._conf, "osd", "stat"], timeout=30).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("ceph osd did not come up")
            time.sleep(0.3)
        self.start_gateway(deadline)
        _run(
            [
                "radosgw-admin",
                *self._conf,
                "user",
                "create",
                "--uid=audiocache",
                "--display-name=audiocache",
                f"--access-key={self.access_key}",
                f"--secret={self.secret_key}",
            ],
            timeout=60,
        )
        return self

    def start_gateway(self, deadline: float | None = None) -> None:
        """Start (or restart, after ``stop_gateway``) radosgw itself; the data stays."""
        deadline = deadline or time.monotonic() + 60
        _run(["radosgw", *self._conf, "-n", "client.rgw.a"])
        while True:
            try:
                httpx.get(self.endpoint, timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("radosgw did not answer") from None
                time.sleep(0.2)

    def _kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        pid_file = self.root / "run" / f"{name}.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def stop_gateway(self) -> None:
        self._kill("client.rgw.a")

    def stop(self) -> None:
        for name in ("client.rgw.a", "osd.0", "mon.a"):
            self._kill(name)


def create_bucket(gateway: Radosgw, name: str) -> None:
    """CreateBucket, signed with botocore (audiocache itself never creates buckets)."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=gateway.endpoint,
        aws_access_key_id=gateway.access_key,
        aws_secret_access_key=gateway.secret_key,
        region_name=gateway.region,
    )
    client.create_bucket(Bucket=name)
