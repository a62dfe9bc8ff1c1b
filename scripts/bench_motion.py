#!/usr/bin/env python3
"""Per-frame cost of the motion gate on demo frames at 1280x720 (target: < 1 ms per frame).

Measures the two input paths: a full BGR frame (OpenCV cameras: resize + grey inside
the detector) and a ready lores Y plane (picamera2). Also times a baseline in the
same run (a bare cv2.resize of the frame), so figures can be compared as ratios on a
noisy shared machine.

    python scripts/bench_motion.py [--frames 600] [--width 1280 --height 720]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2

from edge_agent.config import MotionConfig
from edge_agent.pipeline.motion import MotionDetector
from edge_agent.sources.demo import DemoSource


def _stats(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[int(len(ms) * 0.95) - 1]
    return f"median {statistics.median(ms):.3f} ms  p95 {p95:.3f} ms  mean {statistics.fmean(ms):.3f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one core, as on the pole where the other cores read plates

    src = DemoSource(args.width, args.height, fps=10, car_interval_s=4.0, speed_px_s=420, seed=1, realtime=False)
    src.open()
    print(f"generating {args.frames} demo frames {args.width}x{args.height} ...", file=sys.stderr)
    frames = [src.read() for _ in range(args.frames)]
    cfg = MotionConfig()

    det = MotionDetector(cfg, args.width, args.height)
    sw, sh = det.size
    full_ms, active = [], 0
    for f in frames:
        t0 = time.perf_counter()
        r = det.detect(f)
        full_ms.append((time.perf_counter() - t0) * 1000)
        active += r.active

    lores = [cv2.cvtColor(cv2.resize(f.image, (sw, sh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
             for f in frames]
    det2 = MotionDetector(cfg, args.width, args.height)
    lores_ms = []
    for f, lo in zip(frames, lores, strict=True):
        f.lores = lo
        t0 = time.perf_counter()
        det2.detect(f)
        lores_ms.append((time.perf_counter() - t0) * 1000)

    base_ms = []
    for f in frames:
        t0 = time.perf_counter()
        cv2.resize(f.image, (sw, sh), interpolation=cv2.INTER_LINEAR)
        base_ms.append((time.perf_counter() - t0) * 1000)

    print(f"motion bench: {args.frames} frames {args.width}x{args.height} -> {sw}x{sh} grey, 1 thread")
    print(f"  full BGR frame (OpenCV sources): {_stats(full_ms)}   motion in {active}/{len(frames)} frames")
    print(f"  lores Y plane (picamera2):       {_stats(lores_ms)}")
    print(f"  baseline bare resize:            {_stats(base_ms)}")
    print(f"  ratio full/baseline: {statistics.median(full_ms) / statistics.median(base_ms):.2f}x   "
          f"target < 1 ms per frame: {'MET' if statistics.median(full_ms) < 1.0 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
