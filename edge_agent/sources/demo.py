"""A synthetic street scene, so that a fresh machine shows the whole pipeline with no camera.

Cars carrying readable Italian-format plates cross the frame left to right, one
every ``demo.car_interval_s``. Scene time advances by 1/fps per frame, so a slow
consumer still sees every car at every position. The plate texts come from a
seeded generator and are logged, so what the agent reads can be checked.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.sources.base import Frame, FrameSource
from edge_agent.sources.pacing import Pacer
from edge_agent.sources.plate_render import PLATE_H, PLATE_W, random_italian_plate, render_plate

log = logging.getLogger(__name__)

_MAX_PLATES_SHOWN = 10_000
_CAR_COLOURS = [(40, 40, 160), (160, 90, 30), (50, 50, 50), (200, 200, 200), (30, 110, 40), (20, 140, 200)]


@dataclass
class _Car:
    plate: str
    sprite: np.ndarray
    mask: np.ndarray
    start_t: float
    y: int


def _background(w: int, h: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    horizon = h * 2 // 5
    img[:horizon] = (170, 150, 120)  # buildings / sky band
    for i, x in enumerate(range(0, w, max(w // 8, 1))):
        shade = 110 + (i * 37) % 80
        top = horizon // 4 + (i * 23) % 40
        cv2.rectangle(img, (x + 6, top), (x + w // 8 - 6, horizon), (shade, shade, shade + 10), -1)
    img[horizon:] = (85, 88, 90)  # asphalt
    cv2.line(img, (0, horizon), (w, horizon), (200, 200, 200), 3)
    dash_y = h * 7 // 8
    for x in range(0, w, 120):
        cv2.line(img, (x, dash_y), (x + 60, dash_y), (230, 230, 230), 6)
    # Fixed-pattern texture so the road is not a flat colour (motion and detector both see real-ish edges).
    noise = np.random.default_rng(0).integers(-8, 9, size=(h, w, 1), dtype=np.int16)
    out: np.ndarray = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return out


def _car_sprite(plate: str, rng: random.Random, scale: float) -> tuple[np.ndarray, np.ndarray]:
    cw, ch = int(440 * scale), int(270 * scale)
    sprite = np.zeros((ch, cw, 3), np.uint8)
    mask = np.zeros((ch, cw), np.uint8)
    colour = rng.choice(_CAR_COLOURS)
    body_top = int(ch * 0.35)
    cv2.rectangle(sprite, (0, body_top), (cw - 1, ch - int(ch * 0.12)), colour, -1)
    cv2.rectangle(mask, (0, body_top), (cw - 1, ch - int(ch * 0.12)), 255, -1)
    roof = np.array([[int(cw * 0.15), body_top], [int(cw * 0.25), 0], [int(cw * 0.75), 0], [int(cw * 0.85), body_top]])
    cv2.fillPoly(sprite, [roof], colour)
    cv2.fillPoly(mask, [roof], 255)
    win = np.array([[int(cw * 0.2), body_top - 4], [int(cw * 0.28), int(ch * 0.06)],
                    [int(cw * 0.72), int(ch * 0.06)], [int(cw * 0.8), body_top - 4]])
    cv2.fillPoly(sprite, [win], (60, 40, 30))
    for wx in (int(cw * 0.1), int(cw * 0.7)):
        cv2.rectangle(sprite, (wx, ch - int(ch * 0.16)), (wx + int(cw * 0.2), ch - 1), (20, 20, 20), -1)
        cv2.rectangle(mask, (wx, ch - int(ch * 0.16)), (wx + int(cw * 0.2), ch - 1), 255, -1)
    for lx in (int(cw * 0.04), int(cw * 0.82)):
        cv2.rectangle(sprite, (lx, body_top + int(ch * 0.08)), (lx + int(cw * 0.14), body_top + int(ch * 0.18)),
                      (30, 30, 210), -1)
    pw = int(170 * scale)
    ph = int(pw * PLATE_H / PLATE_W)
    plate_img = cv2.resize(render_plate(plate), (pw, ph), interpolation=cv2.INTER_AREA)
    px, py = (cw - pw) // 2, body_top + int(ch * 0.27)
    sprite[py : py + ph, px : px + pw] = plate_img
    return sprite, mask


class DemoSource(FrameSource):
    name = "demo"

    def __init__(self, width: int, height: int, fps: float, car_interval_s: float, speed_px_s: float,
                 seed: int = 1, realtime: bool = True) -> None:
        self._w, self._h, self._fps = width, height, fps
        self._interval = car_interval_s
        self._speed = speed_px_s
        self._rng = random.Random(seed)
        self._bg: np.ndarray | None = None
        self._cars: list[_Car] = []
        self._next_car_t = 0.5
        self._index = 0
        self._pacer = Pacer(fps)
        self._realtime = realtime  # False: frames as fast as asked (benchmarks, tests), same scene timing
        # The first plates, in order, for tests and measurements; capped because a demo agent may run for months.
        self.plates_shown: list[str] = []

    def open(self) -> None:
        self._bg = _background(self._w, self._h)
        self._pacer = Pacer(self._fps)

    def _spawn(self, t: float) -> None:
        plate = random_italian_plate(self._rng)
        scale = self._h / 720 * self._rng.uniform(0.9, 1.15)
        sprite, mask = _car_sprite(plate, self._rng, scale)
        y = int(self._h * 0.62) - sprite.shape[0] // 2 + self._rng.randint(-20, 20)
        self._cars.append(_Car(plate, sprite, mask, t, max(0, min(y, self._h - sprite.shape[0]))))
        if len(self.plates_shown) < _MAX_PLATES_SHOWN:
            self.plates_shown.append(plate)
        # Synthetic plates, but the rule has no exceptions: plate texts go to the log at DEBUG only.
        log.debug("demo: car with plate %s enters the scene", plate)

    def read(self) -> Frame:
        assert self._bg is not None, "open() first"
        mono = self._pacer.wait() if self._realtime else time.monotonic()
        t = self._index / self._fps
        while t >= self._next_car_t:
            self._spawn(self._next_car_t)
            self._next_car_t += self._interval
        frame = self._bg.copy()
        alive: list[_Car] = []
        for car in self._cars:
            sw = car.sprite.shape[1]
            x = int(-sw + (t - car.start_t) * self._speed)
            if x >= self._w:
                continue
            alive.append(car)
            x0, x1 = max(x, 0), min(x + sw, self._w)
            if x1 <= x0:
                continue
            sy = slice(car.y, car.y + car.sprite.shape[0])
            src = slice(x0 - x, x1 - x)
            cv2.copyTo(car.sprite[:, src], car.mask[:, src], frame[sy, x0:x1])
        self._cars = alive
        self._index += 1
        return Frame(self._index, time.time(), mono, frame)

    def close(self) -> None:
        self._bg = None
