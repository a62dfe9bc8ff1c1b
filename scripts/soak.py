#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Soak: run the whole agent for a long time at an accelerated rate and check that memory and open files stay flat.

The agent runs the demo street scene at a high frame rate with fast, frequent cars (many times a real street's
traffic: "accelerated replay"), plate reading on, publishing to a local mosquitto that this script starts, with
a subscriber that drains every event. Every ``--interval`` seconds it samples the agent process's RSS, open file
descriptors, threads and CPU time from /proc, and prints a table row. At the end it writes a PNG plot (OpenCV
drawing, no matplotlib) and a CSV, fits a line to RSS over the second half of the run (the first half holds
start-up growth: model load, allocator pools) and gives a verdict: flat when that slope is below
``--max-slope-mb-h`` and the open-file count at the end is no higher than its maximum in the first half.

    python scripts/soak.py --duration 10m                    # a quick look (about 10 minutes)
    python scripts/soak.py --duration 2h --replay ../shared/datasets/eu-plates-dev --fps 10   # real photos, looped
    python scripts/soak.py --duration 6h --interval 60 --out /var/tmp/soak-6h.png
    nohup python scripts/soak.py --duration 24h --interval 120 > soak.txt 2>&1 &   # a day, detached

Exit status: 0 flat, 1 not flat (or the agent died), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from procwatch import AgentRun, Broker, Subscriber, cpu_s, log, open_fds, rss_mb, threads, wait_for, write_config


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    threads: int
    cpu_pct: float
    frames: int
    events: int
    outbox: int


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 600, 10m, 6h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 3:
        return 0.0
    return float(np.polyfit(np.asarray(ts) / 3600.0, np.asarray(ys, dtype=float), 1)[0])


# -- the plot (OpenCV) --------------------------------------------------------------------------------------


def _panel(img: np.ndarray, top: int, height: int, samples: list[Sample], series: list[tuple[str, list[float],
           tuple[int, int, int]]], ylabel: str, fit: tuple[float, float, float] | None = None) -> None:
    left, right = 90, img.shape[1] - 30
    bottom = top + height
    t_max = max(samples[-1].t_s, 1.0)
    values = [v for _, ys, _ in series for v in ys]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.15, 1.0 if hi < 50 else hi * 0.02)
    lo, hi = lo - pad, hi + pad
    font = cv2.FONT_HERSHEY_SIMPLEX

    def xy(t: float, v: float) -> tuple[int, int]:
        return int(left + (right - left) * t / t_max), int(bottom - (bottom - top) * (v - lo) / (hi - lo))

    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    for i in range(6):  # horizontal grid and value labels
        v = lo + (hi - lo) * i / 5
        y = xy(0, v)[1]
        cv2.line(img, (left, y), (right, y), (225, 225, 225), 1)
        cv2.putText(img, f"{v:.1f}", (8, y + 4), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    unit, div = ("h", 3600.0) if t_max >= 7200 else ("min", 60.0)
    for i in range(11):  # vertical grid and time labels
        t = t_max * i / 10
        x = xy(t, lo)[0]
        cv2.line(img, (x, top), (x, bottom), (225, 225, 225), 1)
        digits = 1 if t_max / div >= 5 else 2
        cv2.putText(img, f"{t / div:.{digits}f}", (x - 12, bottom + 16), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, f"{ylabel}   (x: {unit})", (left, top - 8), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    legend = [(name, color) for name, _, color in series]
    for _name, ys, color in series:
        pts = np.array([xy(s.t_s, v) for s, v in zip(samples, ys, strict=True)], np.int32)
        cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
    if fit is not None:
        t0, slope_h, icpt = fit
        a, b = xy(t0, icpt + slope_h * t0 / 3600), xy(t_max, icpt + slope_h * t_max / 3600)
        cv2.line(img, a, b, (0, 0, 220), 1, cv2.LINE_AA)
        legend.append((f"fit, 2nd half: {slope_h:+.2f} MB/h", (0, 0, 220)))
    # Above the panel, in one row: inside it, a flat line at the top would hide the legend or be hidden.
    x = left + 380
    for name, color in legend:
        cv2.putText(img, name, (x, top - 8), font, 0.45, color, 1, cv2.LINE_AA)
        x += cv2.getTextSize(name, font, 0.45, 1)[0][0] + 24


def plot(samples: list[Sample], path: Path, title: str, fit: tuple[float, float, float]) -> None:
    img = np.full((720, 1100, 3), 255, np.uint8)
    cv2.putText(img, title, (90, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    _panel(img, 60, 280, samples, [("RSS (MB)", [s.rss_mb for s in samples], (180, 90, 0))], "RSS, MB", fit)
    _panel(img, 400, 280, samples, [("open fds", [float(s.fds) for s in samples], (0, 140, 0)),
                                    ("threads", [float(s.threads) for s in samples], (120, 0, 160))],
           "open file descriptors and threads")
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")


# -- the run ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=parse_duration, default=parse_duration("4h"), help="e.g. 600, 10m, 6h")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    ap.add_argument("--fps", type=float, default=30.0, help="demo frame rate offered to the agent (default 30)")
    ap.add_argument("--car-interval", type=float, default=1.0, help="seconds between demo cars (default 1)")
    ap.add_argument("--no-alpr", action="store_true", help="motion only (isolates the plate reader's share)")
    ap.add_argument("--replay", type=Path, default=None,
                    help="a folder of images to replay in a loop at --fps instead of the demo scene")
    ap.add_argument("--max-slope-mb-h", type=float, default=5.0, help="flatness bound on the RSS slope")
    ap.add_argument("--out", type=Path, default=None, help="PNG path (default soak-<time>.png here); CSV beside it")
    args = ap.parse_args(argv)
    if args.duration < 4 * args.interval:
        ap.error("--duration must cover at least 4 samples")
    if args.replay is not None and not args.replay.is_dir():
        ap.error(f"--replay {args.replay}: not a folder")
    out = args.out or Path(f"soak-{time.strftime('%Y%m%d-%H%M%S')}.png")
    with tempfile.TemporaryDirectory(prefix="edge-soak-") as tmp:
        work = Path(tmp)
        broker = Broker(work)
        sub = Subscriber(broker.port, keep_payload=False)
        cfg = write_config(work / "agent.toml", {
            "node_id": "soak", "data_dir": str(work / "data"),
            "camera": {"source": str(args.replay.resolve()) if args.replay else "demo", "fps": args.fps,
                       "width": 1280, "height": 720},
            "demo": {"car_interval_s": args.car_interval, "car_speed_px_s": 1600.0},
            "alpr": {"enabled": not args.no_alpr},
            "events": {"dedup_window_s": 5.0},
            "mqtt": {"port": broker.port, "reconnect_min_s": 1.0, "reconnect_max_s": 2.0},
            "health": {"interval_s": 5.0},
        })
        agent = AgentRun(cfg, work / "agent.log")
        try:
            wait_for(lambda: sub.health() is not None, 120, "the agent's first health message")
            samples = run(agent, sub, args.duration, args.interval)
        except (RuntimeError, OSError) as exc:
            log(f"soak aborted: {exc}")
            sys.stderr.write((work / "agent.log").read_text(errors="replace")[-3000:])
            return 1
        finally:
            rc = agent.stop()
            sub.close()
            broker.stop()
        log(f"agent stopped (exit {rc})")
        errors = [line for line in (work / "agent.log").read_text(errors="replace").splitlines()
                  if " ERROR " in line or "Traceback" in line]
    return report(samples, args, out, errors)


def run(agent: AgentRun, sub: Subscriber, duration: float, interval: float) -> list[Sample]:
    samples: list[Sample] = []
    t0 = time.monotonic()
    cpu0, prev_t, prev_cpu = cpu_s(agent.pid), t0, cpu_s(agent.pid)
    print(f"{'t_s':>7} {'rss_mb':>8} {'fds':>5} {'thr':>4} {'cpu%':>6} {'frames':>8} {'events':>7} {'outbox':>6}",
          flush=True)
    next_at = t0
    while True:
        now = time.monotonic()
        if not agent.alive():
            raise RuntimeError(f"the agent exited with {agent.proc.returncode}")
        c = cpu_s(agent.pid)
        h = sub.health() or {}
        s = Sample(round(now - t0, 1), round(rss_mb(agent.pid), 2), open_fds(agent.pid), threads(agent.pid),
                   round(100 * (c - prev_cpu) / max(now - prev_t, 1e-9), 1), h.get("frames", {}).get("processed", 0),
                   sum(n for k, n in sub.counts.items() if k in ("plate", "motion", "alert")),
                   h.get("outbox", {}).get("depth", 0))
        prev_t, prev_cpu = now, c
        samples.append(s)
        print(f"{s.t_s:>7.0f} {s.rss_mb:>8.1f} {s.fds:>5} {s.threads:>4} {s.cpu_pct:>6.1f} {s.frames:>8} "
              f"{s.events:>7} {s.outbox:>6}", flush=True)
        if now - t0 >= duration:
            break
        next_at += interval
        time.sleep(max(0.0, min(next_at, t0 + duration) - time.monotonic()))
    log(f"agent CPU {cpu_s(agent.pid) - cpu0:.0f} s over {time.monotonic() - t0:.0f} s")
    return samples


def report(samples: list[Sample], args: argparse.Namespace, out: Path, errors: list[str]) -> int:
    half = [s for s in samples if s.t_s >= samples[-1].t_s / 2]
    first = [s for s in samples if s.t_s < samples[-1].t_s / 2]
    ts, rss = [s.t_s for s in half], [s.rss_mb for s in half]
    slope = slope_per_hour(ts, rss)
    icpt = float(np.polyfit(np.asarray(ts) / 3600.0, np.asarray(rss), 1)[1]) if len(ts) >= 3 else rss[0]
    fd_slope = slope_per_hour(ts, [float(s.fds) for s in half])
    fds_ok = half[-1].fds <= max(s.fds for s in first)
    flat = slope <= args.max_slope_mb_h and fds_ok
    dur = samples[-1].t_s
    frames = samples[-1].frames
    scene = f"replay of {args.replay.name}" if args.replay else "demo 1280x720"
    title = (f"edge-agent soak: {dur / 60:.0f} min, {scene} @ {args.fps:g} fps offered, "
             f"alpr {'off' if args.no_alpr else 'on'}, {frames} frames, {samples[-1].events} events")
    plot(samples, out, title, (ts[0], slope, icpt))
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(Sample.__dataclass_fields__)
        w.writerows([[getattr(s, k) for k in Sample.__dataclass_fields__] for s in samples])
    print()
    print(f"duration             {dur:.0f} s, {len(samples)} samples every {args.interval:g} s")
    print(f"frames processed     {frames} ({frames / max(dur, 1):.1f}/s); events delivered {samples[-1].events}")
    print(f"RSS                  start {samples[0].rss_mb:.1f} MB, max {max(s.rss_mb for s in samples):.1f} MB, "
          f"end {samples[-1].rss_mb:.1f} MB")
    print(f"RSS slope, 2nd half  {slope:+.2f} MB/h (bound {args.max_slope_mb_h:g} MB/h)")
    print(f"open fds             first half max {max(s.fds for s in first)}, end {half[-1].fds}, "
          f"2nd-half slope {fd_slope:+.2f}/h")
    print(f"threads              start {samples[0].threads}, end {samples[-1].threads}")
    print(f"outbox depth at end  {samples[-1].outbox}")
    print(f"agent ERROR lines    {len(errors)}" + (f" (first: {errors[0][:160]})" if errors else ""))
    print(f"plot                 {out.resolve()} (data: {out.with_suffix('.csv').resolve()})")
    print(f"verdict              {'FLAT' if flat else 'NOT FLAT'}")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
