"""Tracking and voting: one result per vehicle pass, the vote fixes single-frame misreads."""

from __future__ import annotations

from edge_agent.core.boxes import box_iou
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.tracking import PlateTracker, TrackResult, vote


def _read(text: str, x: int, y: int = 400, w: int = 150, conf: float = 0.9,
          chars: tuple[float, ...] | None = None) -> PlateRead:
    return PlateRead(text, (x, y, w, 32), conf, chars if chars is not None else tuple([conf] * len(text)))


def _drive(tracker: PlateTracker, frames: list[list[PlateRead]], fps: float = 10.0,
           tail_s: float = 3.0) -> list[TrackResult]:
    out: list[TrackResult] = []
    t = 0.0
    for reads in frames:
        out += tracker.update(reads, 1_700_000_000 + t, t)
        t += 1 / fps
    for _ in range(int(tail_s * fps)):
        out += tracker.update([], 1_700_000_000 + t, t)
        t += 1 / fps
    return out


def test_one_result_per_pass_with_a_misread_fixed_by_the_vote() -> None:
    texts = ["AB123CD"] * 9
    texts[4] = "AB12SCD"  # one frame misreads 3 as S
    frames = [[_read(t, 100 + 40 * i, conf=0.8 if i != 4 else 0.7)] for i, t in enumerate(texts)]
    results = _drive(PlateTracker(max_gap_s=1.0, max_delay_s=30.0), frames)
    assert len(results) == 1
    r = results[0]
    assert r.text == "AB123CD"
    assert r.frames == 9
    assert r.direction == "left_to_right"
    assert r.alternatives[0][0] == "AB123CD" and any(t == "AB12SCD" for t, _ in r.alternatives)
    assert r.best.read.text == "AB123CD"


def test_two_cars_in_view_are_two_tracks() -> None:
    frames = [[_read("AB123CD", 100 + 30 * i), _read("XY987ZW", 1000 - 30 * i, y=150)] for i in range(8)]
    results = sorted(_drive(PlateTracker(1.0, 30.0), frames), key=lambda r: r.text)
    assert [r.text for r in results] == ["AB123CD", "XY987ZW"]
    assert results[1].direction == "right_to_left"


def test_short_gaps_are_bridged_long_gaps_split() -> None:
    frames = [[_read("AB123CD", 100 + 20 * i)] if i not in (4, 5, 6) else [] for i in range(10)]
    assert len(_drive(PlateTracker(max_gap_s=1.0, max_delay_s=30.0), frames)) == 1
    frames = [[_read("AB123CD", 100)]] + [[] for _ in range(25)] + [[_read("AB123CD", 100)]]
    assert len(_drive(PlateTracker(max_gap_s=1.0, max_delay_s=30.0), frames)) == 2


def test_max_delay_publishes_a_stopped_car_once() -> None:
    frames = [[_read("AB123CD", 500)] for _ in range(100)]  # 10 s parked in view, read every frame
    results = _drive(PlateTracker(max_gap_s=1.0, max_delay_s=2.0), frames)
    assert len(results) == 1
    assert results[0].direction == "stationary"


def test_vote_weights_characters_by_confidence() -> None:
    from edge_agent.pipeline.tracking import Observation

    obs = [
        Observation(_read("AB123CD", 0, chars=(0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9)), 0, 0),
        Observation(_read("AB128CD", 0, chars=(0.9, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9)), 0, 0),
        Observation(_read("AB123CD", 0, chars=(0.9, 0.9, 0.9, 0.9, 0.25, 0.9, 0.9)), 0, 0),
        Observation(_read("AB12CD", 0, conf=0.3), 0, 0),  # wrong length, low weight
    ]
    text, conf, chars, alts = vote(obs)
    assert text == "AB123CD"
    assert 0 < conf <= 1 and len(chars) == 7
    assert chars[4] < chars[0], "the disputed character is less certain"
    assert {a for a, _ in alts} == {"AB123CD", "AB128CD", "AB12CD"}


def test_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert abs(box_iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9
    assert box_iou((3, 3, 0, 0), (3, 3, 0, 0)) == 0.0, "empty boxes overlap nothing"


def test_next_car_at_the_same_spot_is_a_new_track() -> None:
    frames = [[_read("AB123CD", 500)] for _ in range(6)] + [[] for _ in range(4)]
    frames += [[_read("XY987ZW", 505)] for _ in range(6)]
    results = _drive(PlateTracker(max_gap_s=1.5, max_delay_s=30.0), frames)
    assert sorted(r.text for r in results) == ["AB123CD", "XY987ZW"]


def test_levenshtein() -> None:
    from edge_agent.pipeline.tracking import levenshtein

    assert levenshtein("AB123CD", "AB123CD") == 0
    assert levenshtein("AB123CD", "AB12CD") == 1
    assert levenshtein("AB123CD", "XY987ZW") == 7


def test_single_doubtful_read_is_not_published(tmp_path: object) -> None:
    from pathlib import Path

    from edge_agent.commands.hotlist import Hotlists
    from edge_agent.config import Config
    from edge_agent.core.types import PipelineStats
    from edge_agent.pipeline.frame_pipeline import FramePipeline
    from edge_agent.pipeline.tracking import Observation

    d = Path(str(tmp_path))
    stats = PipelineStats()
    pipe = FramePipeline(Config.model_validate({"data_dir": str(d)}), None, stats, Hotlists(d / "h.json", True))

    def track(text: str, conf: float, n: int) -> TrackResult:
        obs = Observation(_read(text, 100, conf=conf), 0.0, 0.0)
        return TrackResult(1, text, conf, tuple([conf] * len(text)), obs, n, ((text, 1.0),), "unknown", 0.0, 0.0)

    assert pipe._plate_events(track("CITR0EN", 0.4, 1)) == []
    assert stats.plates_discarded == 1
    assert [e.type for e in pipe._plate_events(track("AB123CD", 0.9, 1))] == ["plate"], "confident single read"
    assert [e.type for e in pipe._plate_events(track("XX1", 0.4, 3))] == ["plate"], "seen several times"
    pipe.close()
