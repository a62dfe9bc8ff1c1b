# SPDX-License-Identifier: Apache-2.0
"""The tus reference server (tests/tus_server: @tus/server + @tus/file-store under Node) as an agency's
evidence store: on a free loopback port, over TLS (a CA made by the test), behind a bearer token; it can
be killed and restarted on the same port, and tells what it received (its request log, its store)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from child_process import die_with_parent  # scripts/, on the path through conftest
from conftest import free_port
from upload_receiver import make_tls

SERVER_DIR = Path(__file__).parent / "tus_server"
_PORT_IN_USE = 3  # server.mjs's exit status when its port is taken


@dataclass(frozen=True)
class Stored:
    """One upload in the server's file store."""

    id: str
    info: dict[str, object]  # the store's {id}.json: size, metadata, creation_date
    data: bytes

    @property
    def metadata(self) -> dict[str, str]:
        meta = self.info.get("metadata") or {}
        assert isinstance(meta, dict)
        return {str(k): str(v) for k, v in meta.items()}


class TusServer:
    def __init__(self, root: Path, token: str, *options: str) -> None:
        node = shutil.which("node")
        if node is None or not (SERVER_DIR / "node_modules" / "@tus" / "server").is_dir():
            pytest.fail("the tus reference server needs Node and its packages: apt-get install -y nodejs npm && "
                        "npm ci --prefix tests/tus_server (.ci/run does both)")
        self.node = node
        root.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key = make_tls(root / "tls")
        self.store = root / "store"
        self.log = root / "server.log"
        self.token = token
        self.options = options
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/files/"

    def start(self) -> TusServer:
        # The port is free when asked, but another process may take it before Node binds: try another.
        for _ in range(5):
            self.port = free_port()
            if self._spawn():
                return self
        raise AssertionError(f"the tus server found no free port: {self.output()}")

    def restart(self) -> None:
        """Starts it again on the same port (the upload URLs the client holds name it)."""
        self.kill()
        deadline = time.monotonic() + 10
        while not self._spawn():
            if time.monotonic() > deadline:
                raise AssertionError(f"the tus server could not listen on {self.port} again: {self.output()}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def _spawn(self) -> bool:
        cmd = [self.node, str(SERVER_DIR / "server.mjs"), "--port", str(self.port), "--cert", str(self.cert),
               "--key", str(self.key), "--dir", str(self.store), *self.options]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=SERVER_DIR,
                                         env={**os.environ, "TUS_TOKEN": self.token}, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                if rc == _PORT_IN_USE:
                    return False
                raise AssertionError(f"the tus server exited with {rc}: {self.output()}")
            if self._answers():
                return True
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"the tus server did not answer on port {self.port}: {self.output()}")

    def _answers(self) -> bool:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2,
                                           context=ssl.create_default_context(cafile=str(self.ca)))
        try:
            conn.request("OPTIONS", "/files/")
            return conn.getresponse().status == 204
        except OSError:
            return False
        finally:
            conn.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def requests(self) -> list[dict[str, object]]:
        """Every request answered so far: method, path, status, offset (Upload-Offset sent), checksum
        (None: no Upload-Checksum; "ok"/"mismatch" as verified with --checksum, "unverified" without)."""
        lines = [line for line in self.output().splitlines() if line.startswith('{"method"')]
        return [json.loads(line) for line in lines]

    def uploads(self) -> Iterator[Stored]:
        for info_file in sorted(self.store.glob("*.json")):
            info = json.loads(info_file.read_text())
            data_file = info_file.with_suffix("")
            yield Stored(info["id"], info, data_file.read_bytes() if data_file.exists() else b"")

    def upload(self, filename: str) -> Stored:
        found = [u for u in self.uploads() if u.metadata.get("filename") == filename]
        assert len(found) == 1, f"{len(found)} uploads named {filename!r} on the server"
        return found[0]

    def held(self, filename: str) -> int:
        """Bytes of ``filename`` on the server's disk so far (0 before its upload is created)."""
        found = [u for u in self.uploads() if u.metadata.get("filename") == filename]
        return len(found[0].data) if found else 0

    def patches(self, upload_id: str) -> list[dict[str, object]]:
        return [r for r in self.requests() if r["method"] == "PATCH" and str(r["path"]).endswith("/" + upload_id)]


@pytest.fixture
def tus_token() -> str:
    return "tus-bearer-" + os.urandom(8).hex()


@pytest.fixture
def tus_servers(tmp_path: Path, tus_token: str) -> Iterator[Callable[..., TusServer]]:
    """Starts servers with server.mjs's options (``"--checksum"``, ...); all are killed at the end."""
    started: list[TusServer] = []

    def start(*options: str) -> TusServer:
        server = TusServer(tmp_path / f"tus{len(started)}", tus_token, *options)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.kill()


@pytest.fixture
def tus_server(tus_servers: Callable[..., TusServer]) -> TusServer:
    return tus_servers()
