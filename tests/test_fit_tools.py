# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""The tools that train on a lent GPU (``scripts/fit_loop.py``, ``train_detector_fit.py``): the
detector's training pools survive the pack that travels, the data workers feed distinct batches, and
the wall-time schedule warms up, anneals and ends. The Keras fit itself runs where a GPU is lent."""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import fit_loop
import train_detector


def _pools(photos: list[tuple[np.ndarray, list[tuple[float, float, float, float]]]]) -> train_detector.Pools:
    p = train_detector.Pools.__new__(train_detector.Pools)
    p.photos = photos
    rng = np.random.default_rng(3)
    p.backgrounds = [rng.integers(0, 255, (600, 800), dtype=np.uint8)]
    p.crops = [rng.integers(0, 255, (60, 300), dtype=np.uint8), rng.integers(0, 255, (20, 90), dtype=np.uint8)]
    return p


def test_detector_pack_keeps_every_plate_where_it_is(tmp_path: Path) -> None:
    img = np.full((1200, 1600), 90, np.uint8)
    img[500:560, 700:1000] = 230  # a 300 px plate: the pack shrinks the photo until it is 100 px wide
    small = np.full((480, 640), 90, np.uint8)
    small[200:220, 300:360] = 230  # a 60 px plate in a small photo: kept as it is
    src = _pools([(img, [(700.0, 500.0, 300.0, 60.0), (100.0, 100.0, 50.0, 10.0)]),
                  (small, [(300.0, 200.0, 60.0, 20.0)])])
    path = tmp_path / "pack.npz"
    src.save_pack(path)
    got = train_detector.Pools(path)
    assert [len(b) for _, b in got.photos] == [2, 1] and len(got.backgrounds) == 1 and len(got.crops) == 2
    (big, boxes), (kept, kept_boxes) = got.photos
    s = train_detector.PACK_PLATE / 300
    assert abs(big.shape[1] - 1600 * s) <= 1 and np.allclose(boxes[0], (700 * s, 500 * s, 300 * s, 60 * s))
    x, y, w, h = (round(v) for v in boxes[0])
    assert big[y + h // 2, x + w // 2] > 200 and big[y + h // 2, x - 5] < 120, "the box still frames the plate"
    assert kept.shape == small.shape and kept_boxes == [(300.0, 200.0, 60.0, 20.0)]
    assert max(got.backgrounds[0].shape) == train_detector.PACK_BG
    assert got.crops[0].shape[1] == train_detector.PACK_CROP and got.crops[1].shape == (20, 90), "never enlarged"


def test_workers_feed_distinct_batches_and_stop_when_told() -> None:
    def batches(seed: int) -> Iterator[fit_loop.Batch]:
        rng = np.random.default_rng(seed)
        while True:
            yield rng.integers(0, 255, (2, 4), dtype=np.uint8), np.full((2, 1), seed, np.float16)

    # A caller's graceful-stop handler (the agent's CLI installs one) must not keep the workers alive:
    # the forked children inherited it, ignored terminate() and the test run never exited.
    before = set(multiprocessing.active_children())
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        q = fit_loop.start_workers(batches, seed=1, workers=2)  # seeds 1000 and 1001: exact in float16
    finally:
        signal.signal(signal.SIGTERM, previous)
    workers = [c for c in multiprocessing.active_children() if c not in before]
    seeds: set[float] = set()
    for _ in range(500):
        seeds.add(float(q.get(timeout=30)[1][0, 0]))
        if len(seeds) == 2:
            break
    assert seeds == {1000.0, 1001.0}, "each worker its own seed"
    assert len(workers) == 2
    for w in workers:
        w.terminate()  # blocked on a full queue by now
    for w in workers:
        w.join(timeout=10)
        assert w.exitcode == -signal.SIGTERM


def test_wall_time_schedule() -> None:
    peak = 1e-3
    assert fit_loop.lr_at(0.0, peak, 0.05) == peak / 10
    assert abs(fit_loop.lr_at(0.05, peak, 0.05) - peak) < 1e-12
    lrs = [fit_loop.lr_at(f, peak, 0.05) for f in np.linspace(0.05, 1.0, 50)]
    assert all(a >= b for a, b in itertools.pairwise(lrs)), "anneals monotonically"
    assert abs(fit_loop.lr_at(1.0, peak, 0.05) - 0.02 * peak) < 1e-12
    assert fit_loop.lr_at(1.7, peak, 0.05) == fit_loop.lr_at(1.0, peak, 0.05), "past the budget: stays at the floor"


def test_non_plate_text_is_drawn_away_from_the_plates() -> None:
    # Text-like false plates (listing watermarks, badges, a camera's time overlay) are taught as
    # background: the text must never cover a plate the sample teaches.
    import random

    rng = random.Random(7)
    changed = 0
    for _ in range(3000):
        img = np.full((train_detector.TRAIN, train_detector.TRAIN), 128, np.uint8)
        boxes = [(rng.uniform(0, 180), rng.uniform(0, 220), rng.uniform(20, 70), rng.uniform(8, 25))]
        before = img.copy()
        train_detector.text_overlay(img, boxes, rng)
        x, y, w, h = (int(v) for v in boxes[0])
        assert (img[y:y + h + 1, x:x + w + 1] == before[y:y + h + 1, x:x + w + 1]).all()
        changed += int((img != before).any())
    assert changed > 2000, "most samples get some text"


def test_a_tilted_plate_is_taught_with_the_box_around_all_of_it() -> None:
    # Samples are tilted up to ROLL_DEG (a tilted photo or camera): the taught box must still enclose
    # every pixel of the pasted plate, as annotators box a tilted plate.
    import random

    rng = random.Random(3)
    angles = [train_detector.roll_deg(rng) for _ in range(4000)]
    assert max(abs(a) for a in angles) <= train_detector.ROLL_DEG
    assert sum(abs(a) > 10 for a in angles) > 400, "some samples are clearly tilted"
    plate = np.full((40, 160), 255, np.uint8)
    for _ in range(300):
        canvas = np.zeros((train_detector.TRAIN, train_detector.TRAIN), np.uint8)
        x, y, w, h = train_detector.paste(canvas, plate, (60.0, 100.0, 120.0, 30.0), rng)
        ys, xs = np.nonzero(canvas > 0)
        assert xs.min() >= x - 1 and xs.max() <= x + w + 1 and ys.min() >= y - 1 and ys.max() <= y + h + 1


def test_the_calibration_letterbox_is_the_readers() -> None:
    # `--calib photos` and scripts/weights_from_tflite.py feed the detector frames as the reader does.
    from edge_agent.pipeline.alpr.detector import PlateDetector
    from edge_agent.pipeline.alpr.reader import DEFAULT_DETECTOR

    det = PlateDetector(DEFAULT_DETECTOR)
    rng = np.random.default_rng(5)
    for shape in ((720, 1280), (1000, 400), (200, 150)):
        grey = rng.integers(0, 255, shape, dtype=np.uint8)
        det._letterbox(grey, 1.0)
        assert np.array_equal(train_detector.letterbox(grey), det._canvas)
