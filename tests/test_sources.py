"""Frame sources: folder replay (photos of mixed sizes too), OpenCV video files, picamera2 (against a
stand-in), demo, factory."""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_tracking_split import plate_photo, replay

from edge_agent.config import Config
from edge_agent.core.redact import redact
from edge_agent.sources import SourceEnded, SourceError, make_source
from edge_agent.sources.demo import DemoSource
from edge_agent.sources.folder import FolderSource
from edge_agent.sources.opencv_source import OpenCVSource
from edge_agent.sources.picamera2_source import Picamera2Source
from edge_agent.sources.plate_render import random_italian_plate


def _write_images(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        img = np.full((120, 160, 3), i * 20, np.uint8)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), img)


def test_folder_replays_in_name_order_at_fps_and_loops(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    _write_images(folder, 4)
    (folder / "f001b.jpg").write_bytes(b"not a jpeg")  # corrupt: skipped and counted
    src = FolderSource(folder, fps=20, loop=True)
    src.open()
    t0 = time.monotonic()
    values = [int(src.read().image[0, 0, 0]) for _ in range(8)]
    elapsed = time.monotonic() - t0
    assert values == [0, 20, 40, 60, 0, 20, 40, 60]
    assert src.skipped == 2
    assert elapsed >= 7 / 20 * 0.9, "paced to fps"


def test_folder_without_loop_ends(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    _write_images(folder, 2)
    src = FolderSource(folder, fps=1000, loop=False)
    src.open()
    src.read()
    src.read()
    with pytest.raises(SourceEnded):
        src.read()


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path / "empty", 10, True).open()


def test_video_file_is_read_and_looped(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 240))
    for i in range(5):
        writer.write(np.full((240, 320, 3), 40 * i, np.uint8))
    writer.release()
    src = OpenCVSource(str(path), 320, 240, fps=1000, loop=True, read_timeout_s=2)
    src.open()
    frames = [src.read() for _ in range(7)]
    assert frames[0].image.shape == (240, 320, 3)
    assert [f.index for f in frames] == list(range(1, 8))
    assert abs(int(frames[5].image.mean()) - int(frames[0].image.mean())) < 5, "looped back to the start"
    once = OpenCVSource(str(path), 320, 240, fps=1000, loop=False, read_timeout_s=2)
    once.open()
    for _ in range(5):
        once.read()
    with pytest.raises(SourceEnded):
        once.read()


def test_missing_file_and_device_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such video file"):
        OpenCVSource(str(tmp_path / "none.mp4"), 320, 240, 10, True, 1).open()
    with pytest.raises(SourceError, match="cannot open"):
        OpenCVSource("/dev/video97", 320, 240, 10, True, 1).open()


class FakePicamera2:
    """Stand-in with exactly the Picamera2 methods the source calls, returning arrays shaped like the real ones."""

    def __init__(self, fail_capture_after: int | None = None) -> None:
        self.config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self._n = 0
        self._fail_after = fail_capture_after

    def create_video_configuration(self, main: dict[str, Any], lores: dict[str, Any], controls: dict[str, Any],
                                   buffer_count: int) -> dict[str, Any]:
        return {"main": main, "lores": lores, "controls": controls, "buffer_count": buffer_count}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_arrays(self, names: list[str]) -> tuple[list[np.ndarray], dict[str, Any]]:
        assert self.config is not None and self.started
        self._n += 1
        if self._fail_after is not None and self._n > self._fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        w, h = self.config["main"]["size"]
        lw, lh = self.config["lores"]["size"]
        main = np.zeros((h, w, 3), np.uint8)
        yuv = np.zeros((lh * 3 // 2, lw), np.uint8)  # YUV420: Y plane then quarter-size U and V
        yuv[:lh] = 100
        yuv[lh:] = 128
        return [main, yuv][: len(names)], {"SensorTimestamp": self._n}

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def test_picamera2_dual_stream() -> None:
    cam = FakePicamera2()
    src = Picamera2Source(1280, 720, 10, lores_height=120, factory=lambda: cam)
    src.open()
    assert cam.config is not None
    assert cam.config["main"] == {"size": (1280, 720), "format": "RGB888"}
    assert cam.config["lores"]["format"] == "YUV420" and cam.config["lores"]["size"] == (212, 120)
    f = src.read()
    assert f.image.shape == (720, 1280, 3)
    assert f.lores is not None and f.lores.shape == (120, 212) and int(f.lores.max()) == 100, "Y plane only"
    src.close()
    assert cam.closed


def test_picamera2_failures_are_source_errors() -> None:
    def broken() -> Any:
        raise RuntimeError("Failed to acquire camera: Device or resource busy")

    with pytest.raises(SourceError, match="busy"):
        Picamera2Source(1280, 720, 10, 120, factory=broken).open()
    src = Picamera2Source(1280, 720, 10, 120, factory=lambda: FakePicamera2(fail_capture_after=1))
    src.open()
    src.read()
    with pytest.raises(SourceError, match="timed out"):
        src.read()


def test_demo_scene_has_cars_with_plates() -> None:
    src = DemoSource(640, 360, fps=100, car_interval_s=1.0, speed_px_s=400, seed=3, realtime=False)
    src.open()
    first = src.read().image
    for _ in range(260):
        last = src.read().image
    assert len(src.plates_shown) >= 2
    assert all(len(p) == 7 and p[:2].isalpha() and p[2:5].isdigit() for p in src.plates_shown)
    assert float(np.abs(last.astype(int) - first.astype(int)).mean()) > 1.0, "cars move"


def test_factory_picks_by_source(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    assert isinstance(make_source(Config()), DemoSource)
    assert isinstance(make_source(Config.model_validate({"camera": {"source": str(tmp_path / "imgs")}})),
                      FolderSource)
    assert isinstance(make_source(Config.model_validate({"camera": {"source": "rtsp://h/s"}})), OpenCVSource)
    assert redact("rtsp://u:p@h:554/s") == "rtsp://***@h:554/s"
    assert redact("/dev/video0") == "/dev/video0"


def test_redact_hides_query_string_credentials_and_keeps_the_rest() -> None:
    assert (redact("http://10.0.0.9/videostream.cgi?user=admin&pwd=S3cret&resolution=32")
            == "http://10.0.0.9/videostream.cgi?user=***&pwd=***&resolution=32")
    assert redact("rtsp://h/live?channel=1&subtype=0") == "rtsp://h/live?channel=1&subtype=0"
    assert (redact("rtsp://u:p@h/s?Token=abc;loginPas=x#frag") == "rtsp://***@h/s?Token=***;loginPas=***#frag")
    assert redact("/srv/clips/a?password=b.mp4") == "/srv/clips/a?password=b.mp4", "a file path is not a URL"


def test_demo_keeps_only_the_first_plates_it_showed(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_agent.sources.demo as demo

    monkeypatch.setattr(demo, "_MAX_PLATES_SHOWN", 2)
    src = DemoSource(320, 180, fps=100, car_interval_s=0.1, speed_px_s=400, seed=3, realtime=False)
    src.open()
    for _ in range(100):  # about ten cars
        src.read()
    assert len(src.plates_shown) == 2, "a demo agent running for months must not grow this list"


# -- folders of photos of mixed sizes, through the daemon's frame pipeline -------------------------------

DEV_SET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "eu-plates-dev"


def _needs_models() -> None:
    from edge_agent.pipeline.alpr.reader import DEFAULT_DETECTOR, DEFAULT_OCR

    if not (DEFAULT_DETECTOR.exists() and DEFAULT_OCR.exists()):
        pytest.skip("plate models not shipped in edge_agent/models")


def test_folder_of_mixed_size_photos_reads_every_photo(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _needs_models()
    rng = random.Random(9)
    sizes = [(1280, 720), (1280, 720), (640, 480), (1024, 768), (800, 450), (800, 450), (1600, 900), (960, 720)]
    plates = [random_italian_plate(rng) for _ in sizes]
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (text, size) in enumerate(zip(plates, sizes, strict=True)):
        cv2.imwrite(str(folder / f"p{i:02d}.jpg"), plate_photo(text, size, rng))
    with caplog.at_level(logging.WARNING, logger="edge_agent.pipeline.motion"):
        events, stats = replay(folder, tmp_path / "data", 2.0)  # motion on, as configured by default
    assert stats.alpr_runs == len(sizes), "the motion gate let every photo through"
    assert len(events) == len(sizes) and all(e.payload["frames"] == 1 for e in events)
    assert sum(e.payload["text"] == p for e, p in zip(events, plates, strict=True)) >= len(sizes) - 1
    assert sum("frame size changed" in r.getMessage() for r in caplog.records) == 1, "said once"


@pytest.mark.skipif(not DEV_SET.is_dir(), reason=f"{DEV_SET} not present")
def test_dev_set_replay_at_2_fps_gives_one_event_per_photo(tmp_path: Path) -> None:
    _needs_models()
    photos = sorted(p for p in DEV_SET.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    events, stats = replay(DEV_SET, tmp_path / "data", 2.0)
    # Counts only, never which plates were read right: this set is for checking, not for tuning.
    assert stats.alpr_runs == len(photos), "every photo was looked at (the motion gate restarted at each size before)"
    assert all(e.payload["frames"] == 1 for e in events), "no two photos merged into one vehicle"
    assert stats.plates_published + stats.plates_discarded + stats.plates_repeated == stats.plates_read, \
        "each read is one track"
    photos_with_event = {round((_epoch(e.payload["frame_ts"]) - 1_700_000_000) * 2) for e in events}
    assert len(photos_with_event) >= 0.85 * len(photos), f"{len(photos_with_event)}/{len(photos)} photos gave an event"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
