"""One result per vehicle pass: plate boxes tracked across frames, their texts voted on.

Reads are matched to live tracks by box overlap or centre distance (plates move
tens of pixels between frames at 10 fps). A track is finished when it has not been
seen for ``max_gap_s``, or published early once it is ``max_delay_s`` old (the
operations room should not wait for a car that stops in view). The vote is per
character, weighted by the reader's per-character confidences, among the reads of
the most supported length.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from edge_agent.alpr.types import PlateRead

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Observation:
    read: PlateRead
    frame_ts: float
    mono: float


@dataclass(frozen=True, slots=True)
class TrackResult:
    """A finished (or published-early) track: what becomes one ``events/plate``."""

    track_id: int
    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    best: Observation  # the read whose crop and box are published
    frames: int
    alternatives: tuple[tuple[str, float], ...]  # (text, share of the vote), best first
    direction: str
    first_ts: float
    last_ts: float


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _similar(a: str, b: str) -> bool:
    if a in b or b in a:
        return min(len(a), len(b)) >= 3
    return levenshtein(a, b) <= max(2, min(len(a), len(b)) // 3)


def _centre(b: Box) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1] + b[3] / 2


@dataclass
class _Track:
    track_id: int
    obs: list[Observation] = field(default_factory=list)
    published: bool = False

    @property
    def last(self) -> Observation:
        return self.obs[-1]

    def match_cost(self, read: PlateRead, mono: float, max_gap_s: float) -> float | None:
        """Lower is better; None when this read cannot belong to the track."""
        last = self.last
        if mono - last.mono > max_gap_s:
            return None
        overlap = iou(last.read.box, read.box)
        # At a fixed camera the next car's plate shows up where the last one was, so position alone
        # would merge two cars. A plate replaced within a few frames at the same place is impossible,
        # though; otherwise reads of one plate differ by OCR slips or truncation, not most characters.
        back_to_back = mono - last.mono <= 0.35 and overlap >= 0.3
        if not back_to_back and not any(_similar(read.text, o.read.text) for o in self.obs[-4:]):
            return None
        if overlap >= 0.1:
            return 1.0 - overlap
        (cx, cy), (rx, ry) = _centre(last.read.box), _centre(read.box)
        width = max(last.read.box[2], read.box[2], 1)
        # Allow a plate to move up to ~2 plate widths between reads when reads are a few frames apart.
        dist = ((cx - rx) ** 2 + (cy - ry) ** 2) ** 0.5 / width
        return 1.0 + dist if dist <= 2.0 else None


def vote(observations: list[Observation]) -> tuple[str, float, tuple[float, ...], tuple[tuple[str, float], ...]]:
    """Character-by-character vote weighted by confidence. Returns text, confidence, per-char
    confidences and the alternatives (whole texts with their share of the total weight)."""
    by_len: dict[int, list[PlateRead]] = defaultdict(list)
    for o in observations:
        by_len[len(o.read.text)].append(o.read)
    weight_by_len = {n: sum(r.confidence for r in reads) for n, reads in by_len.items()}
    n = max(weight_by_len, key=lambda k: (weight_by_len[k], len(by_len[k])))
    reads = by_len[n]
    chars: list[str] = []
    confs: list[float] = []
    for i in range(n):
        tally: dict[str, float] = defaultdict(float)
        for r in reads:
            w = r.char_confidences[i] if len(r.char_confidences) == n else r.confidence
            tally[r.text[i]] += max(w, 1e-3)
        ch, w = max(tally.items(), key=lambda kv: kv[1])
        chars.append(ch)
        confs.append(w / sum(tally.values()))
    text = "".join(chars)
    # Agreement among reads times how sure the best agreeing read was.
    agreeing = [r.confidence for r in reads if r.text == text] or [max(r.confidence for r in reads)]
    confidence = float(min(confs) * max(agreeing)) if confs else 0.0
    totals: dict[str, float] = defaultdict(float)
    for o in observations:
        totals[o.read.text] += o.read.confidence
    total = sum(totals.values()) or 1.0
    alts = tuple(sorted(((t, round(w / total, 3)) for t, w in totals.items()), key=lambda kv: -kv[1]))
    return text, confidence, tuple(confs), alts


def direction(observations: list[Observation]) -> str:
    """Dominant motion of the plate in the image: left/right across it, approaching/receding along it."""
    if len(observations) < 2:
        return "unknown"
    a, b = observations[0].read.box, observations[-1].read.box
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    dx, dy = bx - ax, by - ay
    grow = b[2] / max(a[2], 1)
    scale = max(a[2], b[2], 1)
    if abs(dx) < 0.25 * scale and abs(dy) < 0.25 * scale and 0.85 < grow < 1.18:
        return "stationary"
    if abs(dx) >= abs(dy) and abs(dx) >= 0.25 * scale:
        return "left_to_right" if dx > 0 else "right_to_left"
    return "approaching" if grow >= 1.0 or dy > 0 else "receding"


class PlateTracker:
    def __init__(self, max_gap_s: float, max_delay_s: float, max_tracks: int = 64) -> None:
        self._max_gap = max_gap_s
        self._max_delay = max_delay_s
        self._max_tracks = max_tracks
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)

    @property
    def live(self) -> int:
        return len(self._tracks)

    def update(self, reads: list[PlateRead], frame_ts: float, mono: float) -> list[TrackResult]:
        """Adds this frame's reads (possibly none) and returns the tracks that are due for publishing."""
        free = list(self._tracks)
        for read in sorted(reads, key=lambda r: -r.confidence):
            costs = [(c, t) for t in free if (c := t.match_cost(read, mono, self._max_gap)) is not None]
            if costs:
                _, track = min(costs, key=lambda ct: ct[0])
                free.remove(track)
            else:
                track = _Track(next(self._ids))
                self._tracks.append(track)
            track.obs.append(Observation(read, frame_ts, mono))
            # Memory stays bounded for a car parked in view for hours: keep the best and latest reads.
            if len(track.obs) > 64:
                keep = sorted(track.obs[:-8], key=lambda o: -o.read.confidence)[:24]
                track.obs = sorted(keep, key=lambda o: o.mono) + track.obs[-8:]
        return self._due(mono)

    def _due(self, mono: float) -> list[TrackResult]:
        out: list[TrackResult] = []
        alive: list[_Track] = []
        for t in self._tracks:
            ended = mono - t.last.mono > self._max_gap
            overdue = not t.published and mono - t.obs[0].mono >= self._max_delay
            if (ended or overdue) and not t.published:
                out.append(self._result(t))
                t.published = True
            if not ended:
                alive.append(t)
        # Bound the number of live tracks (e.g. a car park in view): finish the oldest ones.
        while len(alive) > self._max_tracks:
            oldest = min(alive, key=lambda t: t.last.mono)
            alive.remove(oldest)
            if not oldest.published:
                out.append(self._result(oldest))
        self._tracks = alive
        return out

    def flush(self) -> list[TrackResult]:
        """Publishes every unpublished track (at shutdown: a read is never lost to a stop)."""
        out = [self._result(t) for t in self._tracks if not t.published]
        self._tracks = []
        return out

    def _result(self, t: _Track) -> TrackResult:
        text, conf, char_confs, alts = vote(t.obs)
        agreeing = [o for o in t.obs if o.read.text == text] or t.obs
        best = max(agreeing, key=lambda o: (o.read.confidence, o.read.box[2]))
        return TrackResult(t.track_id, text, conf, char_confs, best, len(t.obs), alts[:5], direction(t.obs),
                           t.obs[0].frame_ts, t.last.frame_ts)
