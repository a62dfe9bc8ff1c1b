# SPDX-License-Identifier: Apache-2.0
"""The transit record (issue 15.4): every plate event carries read status, country and its confidence,
lane, clock state and a size-capped context image; a pass that moved through a lane without a readable
plate is recorded too, as ``read_status: "unread"``, and a leaf, a short twitch or a vehicle already read
is not."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.commands.hotlist import Hotlists
from edge_agent.config import Config, ConfigError, validate
from edge_agent.core.clock import CaptureClock, ClockState, kernel_clock
from edge_agent.core.types import Event, PipelineStats
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.context_image import encode_capped, vehicle_region
from edge_agent.pipeline.events import Lanes
from edge_agent.pipeline.frame_pipeline import FramePipeline
from edge_agent.pipeline.tracking import Observation, TrackResult
from edge_agent.sources.base import Frame

W, H = 1280, 720
T0 = 1_700_000_000.0
# Vehicles drive in the lower half of the view; the upper half is the pavement across the road.
LANES = [{"name": "inbound", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]},
         {"name": "pavement", "polygon": [[0, 0], [1, 0], [1, 0.3], [0, 0.3]]}]
ROAD_ONLY = LANES[:1]


class _Reader:
    """Reads ``text`` on the white box wherever it is (None: a vehicle whose plate cannot be read)."""

    min_confidence = 0.0  # the pipeline sets it to alpr.min_confidence

    def __init__(self, text: str | None = "AB123CD", conf: float = 0.9) -> None:
        self.text, self.conf = text, conf

    @property
    def model_versions(self) -> dict[str, str]:
        return {"fake": "1"}

    def read(self, image_bgr: Any, regions: Any = ()) -> list[PlateRead]:
        if self.text is None:
            return []
        cols = np.flatnonzero(image_bgr[475, :, 0] > 200)
        if cols.size == 0:
            return []
        return [PlateRead(self.text, (int(cols[0]) + 20, 500, 150, 32), self.conf, (self.conf,) * len(self.text))]


def _frame(i: int, mono: float, box: tuple[int, int, int, int] | None, noise: bool = False) -> Frame:
    img = np.full((H, W, 3), 80, np.uint8)
    if noise:  # worst case for JPEG
        img = np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(img, (x, y), (x + w, y + h), (240, 240, 240), -1)
    return Frame(i, T0 + mono, mono, img)


def _pipe(tmp_path: Path, reader: Any, **sections: dict[str, Any]) -> FramePipeline:
    raw: dict[str, Any] = {"data_dir": str(tmp_path), "motion": {"end_after_s": 0.5},
                           "tracking": {"max_gap_s": 1.0, "max_delay_s": 60}}
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v}
    return FramePipeline(Config.model_validate(raw), reader, PipelineStats(), Hotlists(tmp_path / "h.json", True),
                         clock=lambda: ClockState(True, "timedatectl"))


def _drive(pipe: FramePipeline, start: float, frames: int, y: int = 400, size: tuple[int, int] = (200, 150),
           speed: int = 60) -> list[Event]:
    """A still background, then a box crossing left to right at 10 fps, then 3 s of still frames."""
    out = pipe.process(_frame(0, start, None))
    t = start
    for i in range(1, frames + 1):
        t = start + i / 10
        out += pipe.process(_frame(i, t, (100 + speed * i, y, *size)))
    for k in range(1, 31):
        out += pipe.process(_frame(frames + k, t + k / 10, None))
    return out


def _plates(events: list[Event]) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.type == "plate"]


def _jpeg(payload: dict[str, Any]) -> np.ndarray:
    data = base64.b64decode(payload["context_jpeg"])
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


# -- plate events --------------------------------------------------------------------------------------


def test_plate_event_is_a_transit_record(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, _Reader(), events={"lanes": LANES})
    (p,) = _plates(_drive(pipe, 100.0, 10))
    pipe.close()
    assert p["read_status"] == "read" and p["text"] == "AB123CD" and not p["low_confidence"]
    # AA123AA fits six of the default formats: the layout alone cannot tell these countries apart.
    assert p["country"] == "IT" and p["country_confidence"] == pytest.approx(1 / 6, abs=0.001)
    assert p["lane"] == "inbound"  # the plate box centre (y 516) is in the lower half
    assert p["direction"] == "left_to_right" and p["track_id"] is not None
    clock = p["clock"]
    assert clock["synced"] is True and clock["source"] == "timedatectl"
    assert set(clock) == {"synced", "source", "offset_ms", "max_error_ms"}
    ctx = _jpeg(p)
    assert len(base64.b64decode(p["context_jpeg"])) <= 40 * 1024
    assert max(ctx.shape[:2]) <= 640
    # The context image is the region around the published plate box, and the vehicle (the white box) is in it.
    region = vehicle_region(tuple(p["box"]), W, H)  # type: ignore[arg-type]
    assert region is not None
    rx, ry, rw, rh = region
    assert ctx.shape[1] / ctx.shape[0] == pytest.approx(rw / rh, rel=0.02)
    scale = ctx.shape[1] / rw
    bx, by, bw, _bh = p["box"]
    cx, cy = round((bx + bw / 2 - rx) * scale), round((by - 60 - ry) * scale)  # above the plate, on the vehicle
    assert ctx[cy - 3 : cy + 3, cx - 3 : cx + 3].min() > 200


def test_lane_is_null_without_lanes_or_outside_them(tmp_path: Path) -> None:
    for lanes, want in (([], None), ([LANES[1]], None), (ROAD_ONLY, "inbound")):
        d = tmp_path / str(len(lanes)) / (want or "none")
        pipe = _pipe(d, _Reader(), events={"lanes": lanes})
        (p,) = _plates(_drive(pipe, 100.0, 10))
        pipe.close()
        assert p["lane"] == want


def test_lanes_follow_the_frame_size() -> None:
    lanes = Lanes(validate({"events": {"lanes": LANES}}).events.lanes)
    assert lanes.at(640, 600, W, H) == "inbound" and lanes.at(640, 100, W, H) == "pavement"
    assert lanes.at(640, 300, W, H) is None
    assert lanes.at(320, 300, 640, 480) == "inbound"  # 300 of 480 is in the lower half
    assert not Lanes([]) and Lanes([]).at(1, 1, W, H) is None


def test_lane_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"events.lanes: lane 0 needs at least 3 points"):
        validate({"events": {"lanes": [{"name": "a", "polygon": [[0, 0], [1, 1]]}]}})
    with pytest.raises(ConfigError, match=r"lane 1 point \(1.0, 2.0\) is outside 0..1"):
        validate({"events": {"lanes": [LANES[0], {"name": "b", "polygon": [[0, 0], [1, 0], [1, 2]]}]}})
    with pytest.raises(ConfigError, match=r"lane names must be unique"):
        validate({"events": {"lanes": [LANES[0], LANES[0]]}})
    with pytest.raises(ConfigError, match=r"events.lanes.0.name"):
        validate({"events": {"lanes": [{"name": "in bound", "polygon": [[0, 0], [1, 0], [1, 1]]}]}})
    with pytest.raises(ConfigError, match=r"events.context_max_kb"):
        validate({"events": {"context_max_kb": -1}})


def test_country_confidence_is_the_share_of_enabled_formats_that_fit(tmp_path: Path) -> None:
    def conf(text: str, enabled: list[str] | None = None) -> float | None:
        cfg: dict[str, Any] = {"data_dir": str(tmp_path)}
        if enabled:
            cfg["formats"] = {"enabled": enabled}
        pipe = FramePipeline(Config.model_validate(cfg), None, PipelineStats(), Hotlists(tmp_path / "h.json", True))
        try:
            return pipe.formats.country_of(pipe.formats.check(text))[1]
        finally:
            pipe.close()

    assert conf("AB123CD") == pytest.approx(1 / 6)  # IT FR AT SK PL HR
    assert conf("AB123CD", ["IT", "DE", "CH"]) == 1.0  # a pole that only expects these
    assert conf("BAB1234") == 1.0  # only DE has this shape
    assert conf("M1234AB") == 0.5  # ES and AT
    assert conf("Q") is None  # fits nothing: no country
    assert conf("AB123CD", ["any"]) is None  # "any" is not a country


def test_read_status_partial_for_doubtful_or_format_failing_text(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, None)

    def track(text: str, conf: float, n: int) -> dict[str, Any]:
        obs = Observation(PlateRead(text, (100, 500, 150, 32), conf, (conf,) * len(text)), T0, 0.0)
        (event,) = pipe._plate_events(TrackResult(n, text, conf, (conf,) * len(text), obs, n, ((text, 1.0),),
                                                  "unknown", T0, T0))
        return event.payload

    assert track("AB123CD", 0.9, 3)["read_status"] == "read"
    assert track("EF456GH", 0.4, 3)["read_status"] == "partial"  # below tracking.low_confidence
    p = track("QQQQQQQQ", 0.9, 4)  # fits no enabled format
    assert p["read_status"] == "partial" and p["country"] is None and p["country_confidence"] is None
    assert p["context_jpeg"] is None and p["lane"] is None  # no frame was at hand for this made-up track
    pipe.close()


def test_context_image_fits_its_cap_or_is_off(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for kb in (40, 12, 4):
        jpeg = encode_capped(noise, kb * 1024)
        assert jpeg is not None and len(jpeg) <= kb * 1024
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
    assert encode_capped(noise, 200) is None, "nothing fits: no image rather than a broken one"
    smooth = np.full((480, 640, 3), 120, np.uint8)
    assert len(encode_capped(smooth, 40 * 1024) or b"") < 10 * 1024, "an easy image keeps its quality"

    pipe = _pipe(tmp_path / "a", _Reader(), events={"context_max_kb": 8})
    out = pipe.process(_frame(0, 100.0, None, noise=True))
    for i in range(1, 8):
        out += pipe.process(_frame(i, 100 + i / 10, (200 + 40 * i, 400, 200, 150), noise=True))
    (p,) = _plates(out + pipe.flush())
    pipe.close()
    assert len(base64.b64decode(p["context_jpeg"])) <= 8 * 1024

    pipe = _pipe(tmp_path / "b", _Reader(), events={"context_max_kb": 0})
    (p,) = _plates(_drive(pipe, 100.0, 10))
    pipe.close()
    assert p["context_jpeg"] is None and p["crop_jpeg_b64"] is None  # the fake reader gives no crop


def test_vehicle_region_is_several_plate_widths_around_the_plate() -> None:
    region = vehicle_region((600, 500, 100, 22), W, H)
    assert region is not None
    x, y, w, h = region
    assert (x, w) == (450, 400) and y < 500 - 150 and y + h > 522 + 50
    assert vehicle_region((1270, 700, 100, 22), W, H) is not None  # clipped, not lost
    assert vehicle_region((5000, 5000, 100, 22), W, H) is None


def test_clock_state_is_the_cached_one_plus_the_kernel_estimate() -> None:
    calls: list[int] = []

    def sync() -> ClockState:
        calls.append(1)
        return ClockState(False, "chrony", "leap status Not synchronised")

    c = CaptureClock(sync).describe()
    assert c["synced"] is False and c["source"] == "chrony" and calls == [1]
    assert CaptureClock().describe()["synced"] is None
    offset, max_error = kernel_clock()
    assert offset is None or isinstance(offset, float)
    assert max_error is None or max_error >= 0


# -- passes without a readable plate -------------------------------------------------------------------


def test_vehicle_without_readable_plate_gives_one_unread_record(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, _Reader(None), events={"lanes": ROAD_ONLY})
    events = _drive(pipe, 100.0, 12)
    pipe.close()
    (p,) = _plates(events)
    assert p["read_status"] == "unread" and p["text"] is None and p["confidence"] is None
    assert p["lane"] == "inbound" and p["direction"] == "left_to_right" and p["frames"] >= 10
    assert p["crop_jpeg_b64"] is None and p["country"] is None and p["clock"]["synced"] is True
    assert p["first_seen"] < p["last_seen"]
    ctx = _jpeg(p)
    # The moving region: the vehicle (the white box), and the road just behind it where the motion
    # detector's running background still sees it.
    assert (ctx.min(axis=2) > 200).mean() > 0.1, "the context image shows the moving vehicle"


def test_unread_record_comes_by_the_clock_when_frames_stop(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, _Reader(None))
    events = pipe.process(_frame(0, 100.0, None))
    for i in range(1, 11):
        events += pipe.process(_frame(i, 100 + i / 10, (100 + 60 * i, 400, 200, 150)))
    assert not _plates(events)
    assert not _plates(pipe.tick(101.0 + 0.9, T0 + 101.9))
    late = _plates(pipe.tick(101.0 + 1.1, T0 + 102.1))
    assert [p["read_status"] for p in late] == ["unread"] and late[0]["lane"] is None
    assert not _plates(pipe.flush())
    pipe.close()


def test_no_unread_record_for_what_is_not_a_vehicle_pass(tmp_path: Path) -> None:
    cases: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "motion outside every lane": ({"lanes": ROAD_ONLY}, {"y": 20}),
        "a small thing moving (a leaf, a bird)": ({}, {"size": (80, 60)}),
        "a twitch shorter than unread_min_s": ({}, {"frames": 2}),
        "unread events off": ({"unread_events": False}, {}),
    }
    for name, (events_cfg, drive) in cases.items():
        pipe = _pipe(tmp_path / name.replace(" ", "_"), _Reader(None), events=events_cfg)
        args: dict[str, Any] = {"frames": 12, **drive}
        out = _drive(pipe, 100.0, **args)
        pipe.close()
        assert not _plates(out), name
        assert [e.payload["state"] for e in out if e.type == "motion"][:1] == ["start"], f"{name}: motion seen"
    pipe = _pipe(tmp_path / "no_reader", None)
    assert not _plates(_drive(pipe, 100.0, 12)), "without a plate reader nothing is 'unread'"
    pipe.close()


def test_no_unread_record_when_the_pass_was_read_or_was_a_repeat(tmp_path: Path) -> None:
    pipe = _pipe(tmp_path, _Reader("AB123CD"), events={"lanes": ROAD_ONLY, "dedup_window_s": 600})
    first = _plates(_drive(pipe, 100.0, 12))
    assert [p["read_status"] for p in first] == ["read"]
    again = _drive(pipe, 110.0, 12)  # the same vehicle back within the de-duplication window
    pipe.close()
    assert not _plates(again), "a vehicle already published is neither published again nor unread"


def test_single_doubtful_read_does_not_hide_the_pass(tmp_path: Path) -> None:
    class _Glimpse(_Reader):
        """One doubtful read in the first frame of the pass, then nothing readable."""

        def read(self, image_bgr: Any, regions: Any = ()) -> list[PlateRead]:
            self.calls = getattr(self, "calls", 0) + 1
            return super().read(image_bgr) if self.calls == 2 else []

    pipe = _pipe(tmp_path, _Glimpse("XX1", conf=0.55), events={"lanes": ROAD_ONLY})
    out = _drive(pipe, 100.0, 12)
    pipe.close()
    assert pipe._stats.plates_discarded == 1
    assert [p["read_status"] for p in _plates(out)] == ["unread"]


def test_the_reader_reads_with_the_nodes_min_confidence(tmp_path: Path) -> None:
    # The reader needs the floor while it reads (a read that passes it beats one that does not): the
    # pipeline hands it alpr.min_confidence rather than filtering afterwards.
    seen: list[float] = []

    class _Floor(_Reader):
        def read(self, image_bgr: Any, regions: Any = ()) -> list[PlateRead]:
            seen.append(self.min_confidence)
            return super().read(image_bgr, regions)

    pipe = _pipe(tmp_path, _Floor(), alpr={"min_confidence": 0.7}, motion={"scan_interval_s": 1.0})
    pipe.process(_frame(0, 0.0, None))
    assert seen == [0.7]
