#!/usr/bin/env python3
"""Events per vehicle and share of vehicles read correctly, through the daemon's own frame pipeline.

Two scenes:
  --demo N            N cars of the synthetic demo scene (Italian plates), 10 fps.
  --replay DIR        a replay of real frames: each annotated photo in DIR (dev-set format:
                      NAME.txt beside NAME.jpg) becomes one vehicle pass of --frames frames in which
                      the view closes in on the plate (the plate grows and moves, like an
                      approaching car), separated by empty-road frames.

Each frame goes through edge_agent.pipeline.frame_pipeline.FramePipeline (motion gate, plate reader, tracker,
vote, formats, de-dup) exactly as in the daemon. Targets (issue 6): events per vehicle 1.00.

    python scripts/measure_events.py --demo 20
    python scripts/measure_events.py --replay ../shared/datasets/eu-plates-dev [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.commands.hotlist import Hotlists
from edge_agent.config import Config
from edge_agent.core.types import PipelineStats
from edge_agent.pipeline.alpr import ModelError, PlateReader
from edge_agent.pipeline.frame_pipeline import FramePipeline
from edge_agent.sources.base import Frame
from edge_agent.sources.demo import DemoSource

FPS = 10.0


def _fold(text: str) -> str:
    return text.upper().replace("O", "0")


def demo_frames(cars: int, seed: int) -> tuple[Iterator[np.ndarray], list[str]]:
    src = DemoSource(1280, 720, FPS, car_interval_s=4.0, speed_px_s=420.0, seed=seed, realtime=False)
    src.open()
    n = int((cars * 4.0 + 0.2) * FPS)  # the last car spawns at 0.5 + (cars-1)*4 s and needs ~4 s to cross

    def gen() -> Iterator[np.ndarray]:
        for _ in range(n):
            yield src.read().image
        # The scene keeps spawning; only the first `cars` are ground truth.
        del src.plates_shown[cars:]

    return gen(), src.plates_shown


def replay_frames(folder: Path, frames_per_pass: int) -> tuple[Iterator[np.ndarray], list[str]]:
    items: list[tuple[Path, tuple[int, int, int, int], str]] = []
    for txt in sorted(folder.glob("*.txt")):
        parts = txt.read_text().strip().split("\t")
        if len(parts) < 6 or not (folder / parts[0]).is_file():
            continue
        x, y, w, h = (int(float(v)) for v in parts[1:5])
        items.append((folder / parts[0], (x, y, w, h), parts[5]))
    truth = [t for _, _, t in items]

    def gen() -> Iterator[np.ndarray]:
        for path, (x, y, w, h), _ in items:
            img = cv2.imread(str(path))
            if img is None:
                continue
            ih, iw = img.shape[:2]
            scale = 1280 / max(iw, ih)
            ow, oh = round(iw * scale) // 2 * 2, round(ih * scale) // 2 * 2
            road = np.full((oh, ow, 3), 90, np.uint8)
            for _ in range(8):  # empty road between vehicles: the previous track ends
                yield road
            px, py = x + w / 2, y + h / 2
            for k in range(frames_per_pass):
                f = k / max(frames_per_pass - 1, 1)
                zoom = 1.0 - 0.35 * f  # window shrinks: the plate grows, like an approaching car
                cw, ch = iw * zoom, ih * zoom
                cx = iw / 2 + (px - iw / 2) * f
                cy = ih / 2 + (py - ih / 2) * f
                x0 = int(min(max(cx - cw / 2, 0), iw - cw))
                y0 = int(min(max(cy - ch / 2, 0), ih - ch))
                crop = img[y0 : y0 + int(ch), x0 : x0 + int(cw)]
                yield cv2.resize(crop, (ow, oh), interpolation=cv2.INTER_AREA)
        yield np.full((720, 1280, 3), 90, np.uint8)

    return gen(), truth


def run(frames: Iterator[np.ndarray], truth: list[str], reader: PlateReader, data_dir: Path) -> dict[str, Any]:
    cfg = Config.model_validate({"data_dir": str(data_dir), "events": {"motion_events": False}})
    stats = PipelineStats()
    pipe = FramePipeline(cfg, reader, stats, Hotlists(data_dir / "hotlists.json", fuzzy=True))
    events = []
    t0 = time.perf_counter()
    n = 0
    mono0 = 1_000_000.0
    for n, image in enumerate(frames, 1):
        # Scene time, not wall time: the pipeline sees 10 fps however fast this machine is.
        mono = mono0 + n / FPS
        events += pipe.process(Frame(n, mono, mono, image))
        if n % 100 == 0:
            print(f"  {n} frames, {len(events)} plate events", file=sys.stderr)
    mono = mono0 + (n + 100) / FPS
    events += pipe.process(Frame(n + 1, mono, mono, np.full_like(image, 90)))
    events += pipe.flush()
    elapsed = time.perf_counter() - t0
    pipe.close()
    # Passes with no readable plate (read_status "unread") are records of a vehicle, not reads to score.
    plates = [e.payload for e in events if e.type == "plate" and e.payload.get("read_status") != "unread"]
    texts = [_fold(p["text"]) for p in plates]
    want = [_fold(t) for t in truth]
    correct = sum(1 for t in want if t in texts)
    # Events that match a vehicle count for it; the rest are false or split events.
    per_vehicle = {t: texts.count(t) for t in want}
    unmatched = [t for t in texts if t not in per_vehicle]
    return {
        "vehicles": len(want),
        "plate_events": len(plates),
        "events_per_vehicle": round(len(plates) / max(len(want), 1), 3),
        "vehicles_with_exactly_one_event": sum(1 for c in per_vehicle.values() if c == 1),
        "vehicles_read_correctly": correct,
        "share_read_correctly": round(correct / max(len(want), 1), 3),
        "unmatched_events": unmatched,
        "missed": [t for t in want if t not in texts],
        "frames": n,
        "ms_per_frame": round(elapsed * 1000 / max(n, 1), 2),
        "repeats_suppressed": stats.plates_repeated,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--demo", type=int, metavar="N", help="N cars of the demo scene")
    g.add_argument("--replay", type=Path, metavar="DIR", help="annotated photos replayed as vehicle passes")
    ap.add_argument("--frames", type=int, default=12, help="frames per vehicle pass in --replay (default 12)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        reader = PlateReader(threads=1)
    except ModelError as exc:
        print(f"measure_events: {exc}", file=sys.stderr)
        return 2
    if args.demo is not None:
        frames, truth = demo_frames(args.demo, args.seed)
        scene = f"demo scene, {args.demo} cars"
    else:
        if not args.replay.is_dir():
            print(f"measure_events: {args.replay}: not a directory", file=sys.stderr)
            return 2
        frames, truth = replay_frames(args.replay, args.frames)
        if not truth:
            print(f"measure_events: {args.replay}: no annotated photos (NAME.txt beside NAME.jpg)", file=sys.stderr)
            return 2
        scene = f"replay of {len(truth)} real photos, {args.frames} frames per pass"
    with tempfile.TemporaryDirectory() as tmp:
        result = run(frames, truth, reader, Path(tmp))
    result["scene"] = scene
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{scene}: {result['frames']} frames, {result['ms_per_frame']} ms/frame")
        print(f"  vehicles {result['vehicles']}, plate events {result['plate_events']}, "
              f"events per vehicle {result['events_per_vehicle']:.2f} (target 1.00), "
              f"exactly one event: {result['vehicles_with_exactly_one_event']}/{result['vehicles']}")
        print(f"  read correctly: {result['vehicles_read_correctly']}/{result['vehicles']} "
              f"({100 * result['share_read_correctly']:.1f}%), repeats suppressed {result['repeats_suppressed']}")
        if result["missed"]:
            print(f"  missed: {' '.join(result['missed'])}")
        if result["unmatched_events"]:
            print(f"  events matching no vehicle: {' '.join(result['unmatched_events'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
