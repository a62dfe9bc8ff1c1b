# SPDX-License-Identifier: Apache-2.0
"""Clip uploads against the tus reference server (@tus/server + @tus/file-store, tests/tus_server) over
TLS: creation with our metadata, resume after the server or the node restarts, fail-fast refusals, the
checksum extension, the upload URL's origin."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import wait_until

from edge_agent.footage.clips.service import JobStore
from edge_agent.footage.clips.upload import MemoryUrls, Uploader, UploadError, UploadSettings, UploadStopped

if TYPE_CHECKING:
    from tus_fixture import TusServer

pytest_plugins = ("tus_fixture",)  # tus_server, tus_servers, tus_token


def _uploader(server: TusServer, max_kbps: float = 50_000, chunk_kb: int = 64,
              stop: threading.Event | None = None) -> Uploader:
    return Uploader(UploadSettings(max_kbps=max_kbps, chunk_bytes=chunk_kb * 1024, timeout_s=10, retry_min_s=0.1,
                                   retry_max_s=0.3, give_up_after_s=60, ca_file=server.ca), stop)


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / "out" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _in_background(fn: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_each_file_is_one_upload_with_our_metadata_and_identical_bytes(
        tmp_path: Path, tus_server: TusServer, tus_token: str) -> None:
    clip, manifest = _file(tmp_path, "case-1.mp4", 300_000), _file(tmp_path, "case-1.manifest.json", 700)
    urls = MemoryUrls()
    up = _uploader(tus_server)
    for f in (clip, manifest):
        up.upload(tus_server.endpoint, tus_token, f, f.name, metadata={"request_id": "case-1"}, urls=urls)

    for f in (clip, manifest):
        stored = tus_server.upload(f.name)
        assert stored.data == f.read_bytes()
        assert stored.metadata == {"filename": f.name, "request_id": "case-1"}  # the server's {id}.json
        assert stored.info["size"] == f.stat().st_size
        assert urls.get(f.name) == f"https://127.0.0.1:{tus_server.port}/files/{stored.id}"
    requests = tus_server.requests()
    assert [r["method"] for r in requests].count("POST") == 2
    patches = tus_server.patches(tus_server.upload(clip.name).id)
    # Every PATCH accepted: the reference server answers 400 to an Upload-Length sent after creation.
    assert all(p["status"] == 204 for p in patches)
    assert [int(str(p["offset"])) for p in patches] == list(range(0, 300_000, 64 * 1024))
    assert all(r["checksum"] is None for r in requests)  # not offered by this server, so not sent
    manifest_id = tus_server.upload(manifest.name).id
    # "done" only after the server confirmed the length
    assert [r for r in requests if str(r["path"]).endswith(manifest_id)][-1]["method"] == "HEAD"


def test_server_killed_mid_upload_resumes_from_its_offset(
        tmp_path: Path, tus_server: TusServer, tus_token: str) -> None:
    f = _file(tmp_path, "case-2.mp4", 150_000)
    up = _uploader(tus_server, max_kbps=200, chunk_kb=32)  # 25 kB/s: the kill lands mid-upload
    thread, errors = _in_background(lambda: up.upload(tus_server.endpoint, tus_token, f, f.name,
                                                      metadata={"request_id": "case-2"}))
    wait_until(lambda: tus_server.held(f.name) >= 40_000, 20, "40 kB on the server's disk")
    tus_server.kill()
    held = tus_server.held(f.name)
    before = len(tus_server.requests())
    time.sleep(0.5)  # the node meets a refused connection and backs off
    tus_server.restart()
    thread.join(60)
    assert not thread.is_alive() and not errors, errors

    stored = tus_server.upload(f.name)  # still the one upload created before the kill
    assert stored.data == f.read_bytes()
    after = [r for r in tus_server.requests()[before:] if r["method"] != "OPTIONS"]
    assert after[0]["method"] == "HEAD" and after[0]["path"] == f"/files/{stored.id}"
    offsets = [int(str(r["offset"])) for r in after if r["method"] == "PATCH"]
    assert 40_000 <= held < f.stat().st_size
    assert offsets[0] == held  # continued from what the server had, not from 0
    assert [r["method"] for r in tus_server.requests()].count("POST") == 1


def test_refusal_before_the_body_is_read_fails_at_once(
        tmp_path: Path, tus_server: TusServer, tus_token: str) -> None:
    # server.mjs answers 413 to any PATCH of refuse.bin as soon as it has the headers, then closes.
    f = _file(tmp_path, "refuse.bin", 300_000)
    up = _uploader(tus_server, max_kbps=400, chunk_kb=256)
    t0 = time.monotonic()
    with pytest.raises(UploadError) as refused:
        up.upload(tus_server.endpoint, tus_token, f, f.name, metadata={"request_id": "case-3"})
    elapsed = time.monotonic() - t0
    message = str(refused.value)
    assert "PATCH answered HTTP 413" in message and "refuse.bin is not accepted by this store" in message, message
    assert tus_token not in message
    assert elapsed < 5, elapsed  # not retried for upload.give_up_after_s
    assert up.bytes_sent < 256 * 1024  # the answer came while the chunk was still being sent
    assert [r["status"] for r in tus_server.requests() if r["method"] == "PATCH"] == [413]


def test_wrong_token_fails_at_once_with_401(tmp_path: Path, tus_server: TusServer, tus_token: str) -> None:
    f = _file(tmp_path, "case-4.mp4", 50_000)
    up = _uploader(tus_server)
    t0 = time.monotonic()
    with pytest.raises(UploadError, match=r"POST answered HTTP 401: Unauthorized"):
        up.upload(tus_server.endpoint, "wrong-token", f, f.name)
    assert time.monotonic() - t0 < 3
    assert [(r["method"], r["status"]) for r in tus_server.requests() if r["method"] != "OPTIONS"] == [("POST", 401)]
    assert not list(tus_server.uploads())
    # An upload URL stored with a good token, resumed with a bad one: refused at the HEAD, not retried.
    urls = MemoryUrls()
    up.upload(tus_server.endpoint, tus_token, f, f.name, urls=urls)
    with pytest.raises(UploadError, match=r"HEAD answered HTTP 401"):
        up.upload(tus_server.endpoint, "wrong-token", f, f.name, urls=urls)


def test_restart_of_the_node_resumes_the_stored_upload_with_head(
        tmp_path: Path, tus_server: TusServer, tus_token: str) -> None:
    f = _file(tmp_path, "case-5.mp4", 150_000)
    db = tmp_path / "clips" / "jobs.sqlite3"
    jobs = JobStore(db)
    stop = threading.Event()
    slow = _uploader(tus_server, max_kbps=400, chunk_kb=16, stop=stop)
    thread, errors = _in_background(lambda: slow.upload(tus_server.endpoint, tus_token, f, f.name,
                                                        metadata={"request_id": "case-5"},
                                                        urls=jobs.upload_urls("case-5")))
    wait_until(lambda: tus_server.held(f.name) >= 30_000, 20, "30 kB on the server's disk")
    stop.set()  # the agent shuts down mid-upload
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], UploadStopped)
    jobs.close()
    held = tus_server.held(f.name)
    before = len(tus_server.requests())

    jobs = JobStore(db)  # the next start: a new job store on the same file, a new uploader
    stored_url = jobs.get_upload_url("case-5", f.name)
    upload_id = tus_server.upload(f.name).id
    assert stored_url == f"https://127.0.0.1:{tus_server.port}/files/{upload_id}"
    _uploader(tus_server).upload(tus_server.endpoint, tus_token, f, f.name, metadata={"request_id": "case-5"},
                                 urls=jobs.upload_urls("case-5"))
    after = tus_server.requests()[before:]
    assert "POST" not in [r["method"] for r in after]  # the stored upload, not a new one
    head = next(i for i, r in enumerate(after) if r["method"] == "HEAD")
    assert after[head]["path"] == f"/files/{upload_id}" and after[head]["status"] == 200
    # (The PATCH the stop cut short, its headers sent and no body, may be logged late, or never.)
    resumed = [int(str(r["offset"])) for r in after[head:] if r["method"] == "PATCH"]
    assert 0 < held < f.stat().st_size and resumed[0] == held and 0 not in resumed
    assert tus_server.upload(f.name).data == f.read_bytes()
    jobs.remove("case-5")  # the job ends: its upload URLs go with it
    assert jobs.get_upload_url("case-5", f.name) is None
    jobs.close()


def test_upload_gone_from_the_server_is_created_anew_once(
        tmp_path: Path, tus_server: TusServer, tus_token: str) -> None:
    f = _file(tmp_path, "case-6.mp4", 80_000)
    urls = MemoryUrls()
    up = _uploader(tus_server)
    up.upload(tus_server.endpoint, tus_token, f, f.name, urls=urls)
    first = tus_server.upload(f.name).id
    for p in tus_server.store.glob(first + "*"):
        p.unlink()  # the server lost it (expired, cleaned up)
    up.upload(tus_server.endpoint, tus_token, f, f.name, urls=urls)
    second = tus_server.upload(f.name)
    assert second.id != first and second.data == f.read_bytes()
    assert urls.get(f.name) == f"https://127.0.0.1:{tus_server.port}/files/{second.id}"
    heads = [r["status"] for r in tus_server.requests() if r["path"] == f"/files/{first}" and r["method"] == "HEAD"]
    assert heads[-1] == 404

    # Lost again while being sent anew: that is not a server to keep creating uploads on.
    for p in tus_server.store.glob(second.id + "*"):
        p.unlink()
    slow = _uploader(tus_server, max_kbps=400, chunk_kb=16)
    thread, errors = _in_background(lambda: slow.upload(tus_server.endpoint, tus_token, f, f.name, urls=urls))
    wait_until(lambda: tus_server.held(f.name) >= 16 * 1024, 20, "the new upload under way")
    for p in tus_server.store.glob(tus_server.upload(f.name).id + "*"):
        p.unlink()
    thread.join(20)
    assert len(errors) == 1 and "lost again after it was created anew" in str(errors[0]), errors


def test_checksum_extension_is_used_when_offered(
        tmp_path: Path, tus_servers: Callable[..., TusServer], tus_token: str) -> None:
    # @tus/server 2.4.5 has no checksum extension: server.mjs adds it (OPTIONS lists it, PATCH verified, 460 on
    # mismatch) and damages the first chunk it receives, so the node must send that chunk again.
    server = tus_servers("--checksum", "--corrupt-first-checksum")
    f = _file(tmp_path, "case-7.mp4", 300_000)
    _uploader(server).upload(server.endpoint, tus_token, f, f.name, metadata={"request_id": "case-7"})
    stored = server.upload(f.name)
    assert stored.data == f.read_bytes()
    patches = server.patches(stored.id)
    assert [(p["offset"], p["status"], p["checksum"]) for p in patches[:2]] == [("0", 460, "mismatch"),
                                                                               ("0", 204, "ok")]
    assert all(p["checksum"] == "ok" and p["status"] == 204 for p in patches[1:])
    assert len(patches) == 1 + len(range(0, 300_000, 64 * 1024))


def test_upload_url_must_stay_on_the_endpoint_origin(
        tmp_path: Path, tus_servers: Callable[..., TusServer], tus_token: str) -> None:
    f = _file(tmp_path, "case-8.mp4", 20_000)
    foreign = tus_servers("--location", "foreign")  # answers POST with https://evidence.elsewhere.example/...
    urls = MemoryUrls()
    with pytest.raises(UploadError, match="upload URL on another scheme, host or port"):
        _uploader(foreign).upload(foreign.endpoint, tus_token, f, f.name, urls=urls)
    assert urls.get(f.name) is None and "PATCH" not in [r["method"] for r in foreign.requests()]
    relative = tus_servers("--location", "relative")  # Location: /files/<id>, resolved against the endpoint
    _uploader(relative).upload(relative.endpoint, tus_token, f, f.name, urls=urls)
    stored = relative.upload(f.name)
    assert stored.data == f.read_bytes()
    assert urls.get(f.name) == f"https://127.0.0.1:{relative.port}/files/{stored.id}"


def test_offset_conflict_is_resolved_with_head(tmp_path: Path, tus_server: TusServer, tus_token: str) -> None:
    class Stale(Uploader):
        """Sends its second PATCH at a wrong offset once, as after an answer lost on the way."""

        skewed = False

        def _patch(self, conn: Any, f: Any, offset: int, chunk: bytes) -> tuple[int, str | None, str]:
            if offset > 0 and not self.skewed:
                self.skewed = True
                offset -= 1000
            return super()._patch(conn, f, offset, chunk)

    f = _file(tmp_path, "case-9.mp4", 200_000)
    up = Stale(_uploader(tus_server).settings)
    up.upload(tus_server.endpoint, tus_token, f, f.name)
    stored = tus_server.upload(f.name)
    assert stored.data == f.read_bytes()
    conflict = next(i for i, r in enumerate(tus_server.requests()) if r["status"] == 409)
    assert tus_server.requests()[conflict]["offset"] == str(64 * 1024 - 1000)
    assert tus_server.requests()[conflict + 1]["method"] == "HEAD"  # asked, then went on from the server's offset
