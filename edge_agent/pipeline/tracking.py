"""One result per vehicle pass: plate boxes tracked across frames, their texts voted on.

Reads are matched to live tracks by box overlap or centre distance (plates move
tens of pixels between frames at 10 fps), and only when their text agrees with the
track's: a read that disagrees more than one plate's noisy reads do is another plate,
starts its own track and ends the track whose place it took. A track is finished
when it has not been seen for ``max_gap_s``, or published early once it is
``max_delay_s`` old (the operations room should not wait for a car that stops in
view). The vote is per character, weighted by the reader's per-character
confidences, among the reads of the most supported length.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_agent.core.boxes import box_iou
from edge_agent.pipeline.alpr.types import PlateRead

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
    # What the caller's context hook made of the track's most confident read, in its frame (the events
    # stage keeps the vehicle's image there): only the tracker knows which read that is while the frame exists.
    context: Any = None
    right_band: bool | None = None  # the reads' majority on the right-band country cue; None: no say
    dashes: bool | None = None  # the reads' majority on the dashes cue (edge_agent.pipeline.alpr.separators)


def band_vote(observations: list[Observation], cue: Literal["right_band", "dashes"] = "right_band") -> bool | None:
    """A visual country cue (``right_band`` or ``dashes`` of the reads) over a track's reads: one read sees
    the plate half out of the frame or in a colour cast, most do not. None on a tie or when no read could tell."""
    yes = sum(getattr(o.read, cue) is True for o in observations)
    no = sum(getattr(o.read, cue) is False for o in observations)
    return None if yes == no else yes > no


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _char_confidences(read: PlateRead) -> tuple[float, ...]:
    chars = read.char_confidences
    return chars if len(chars) == len(read.text) else (read.confidence,) * len(read.text)


def confident_distance(a: PlateRead, b: PlateRead) -> float:
    """Edit distance in which an edit costs as much as the reader was sure of the characters it touches.

    A misread character is mostly one the reader was unsure of, so two reads of one plate differ
    cheaply; two different plates read well differ by about one per differing character. A shorter
    read is matched against the part of the longer one it fits best: a plate entering or leaving the
    view, or half hidden, is read cut short, its last visible character often misread.
    """
    if len(a.text) > len(b.text):
        a, b = b, a
    ta, tb = a.text, b.text
    ca, cb = _char_confidences(a), _char_confidences(b)
    cut = len(ta) < len(tb)
    # Rows: the shorter text. Leading and (below) trailing characters of the longer one are free when cut.
    prev = [0.0] * (len(tb) + 1)
    if not cut:
        for j, c in enumerate(cb):
            prev[j + 1] = prev[j] + c
    for i, ch in enumerate(ta):
        cur = [prev[0] + ca[i]]
        for j, other in enumerate(tb):
            sub = 0.0 if ch == other else min(ca[i], cb[j])
            cur.append(min(prev[j + 1] + ca[i], cur[j] + cb[j], prev[j] + sub))
        prev = cur
    return min(prev) if cut else prev[-1]


# Chosen on rendered plates read through blur, noise, skew and JPEG: a misread character is mostly one
# the reader was unsure of, so a wrong read is within 1.5 confident edits of its plate's good reads
# about as often as within 2 plain edits (half the time; the rest start a track of their own, mostly
# dropped as single doubtful reads), while two plates of one series that differ in 2 characters, read
# well, are about 2 apart: 2 plain edits merged 92% of such pairs, 1.5 confident edits 3%. Plates
# that differ in one character are one plate to any rule on text; their times and places tell them apart.
_SAME_PLATE_DISTANCE = 1.5


def same_plate(a: PlateRead, b: PlateRead) -> bool:
    """Whether two reads can be of one plate, judged by their texts alone."""
    if a.text == b.text:
        return True
    longest = max(len(a.text), len(b.text))
    return confident_distance(a, b) <= max(_SAME_PLATE_DISTANCE, 0.2 * longest)


def _centre(b: Box) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1] + b[3] / 2


@dataclass
class _Track:
    track_id: int
    obs: list[Observation] = field(default_factory=list)
    published: bool = False
    context: Any = None
    context_key: tuple[float, int] = (-1.0, -1)

    @property
    def last(self) -> Observation:
        return self.obs[-1]

    def place_cost(self, read: PlateRead, mono: float, max_gap_s: float) -> float | None:
        """How well the read's time and place continue the track (lower is better); None when they cannot."""
        last = self.last
        if mono - last.mono > max_gap_s:
            return None
        overlap = box_iou(last.read.box, read.box)
        if overlap >= 0.1:
            return 1.0 - overlap
        (cx, cy), (rx, ry) = _centre(last.read.box), _centre(read.box)
        width = max(last.read.box[2], read.box[2], 1)
        # Allow a plate to move up to ~2 plate widths between reads when reads are a few frames apart.
        dist = ((cx - rx) ** 2 + (cy - ry) ** 2) ** 0.5 / width
        return 1.0 + dist if dist <= 2.0 else None

    def agrees(self, read: PlateRead) -> bool:
        # Against the latest reads, not the vote: the vote of a young track is one read, maybe a slip.
        return any(same_plate(read, o.read) for o in self.obs[-4:])


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
    return box_direction(observations[0].read.box, observations[-1].read.box)


def box_direction(a: Box, b: Box) -> str:
    """Dominant motion between a first and a last box of one object (a plate, or a moving vehicle)."""
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
        # (read, track id) for each read of the latest update: which vehicle pass each read joined.
        self.last_assignment: tuple[tuple[PlateRead, int], ...] = ()

    @property
    def live(self) -> int:
        return len(self._tracks)

    def update(self, reads: list[PlateRead], frame_ts: float, mono: float,
               context: Callable[[PlateRead], Any] | None = None) -> list[TrackResult]:
        """Adds this frame's reads (possibly none) and returns the tracks that are due for publishing.

        ``context`` is called, while this frame is at hand, for a read that is its track's most confident
        so far; the track keeps only the latest result, so memory stays one context per live track."""
        free = list(self._tracks)
        displaced: list[_Track] = []
        assigned: list[tuple[PlateRead, int]] = []
        for read in sorted(reads, key=lambda r: -r.confidence):
            costs: list[tuple[float, _Track]] = []
            others: list[tuple[float, _Track]] = []
            for t in free:
                cost = t.place_cost(read, mono, self._max_gap)
                if cost is not None:
                    (costs if t.agrees(read) else others).append((cost, t))
            best = min(costs, key=lambda ct: ct[0]) if costs else None
            # A read that continues its own plate's track takes the place only of tracks it sits closer to
            # (two cars side by side keep theirs when one plate is missed in a frame).
            displaced += [t for c, t in others if (best is None or c < best[0]) and t not in displaced]
            if best is not None:
                track = best[1]
                free.remove(track)
            else:
                track = _Track(next(self._ids))
                self._tracks.append(track)
            track.obs.append(Observation(read, frame_ts, mono))
            assigned.append((read, track.track_id))
            key = (read.confidence, read.box[2])
            if context is not None and key > track.context_key:
                track.context, track.context_key = context(read), key
            # Memory stays bounded for a car parked in view for hours: keep the best and latest reads.
            if len(track.obs) > 64:
                keep = sorted(track.obs[:-8], key=lambda o: -o.read.confidence)[:24]
                track.obs = sorted(keep, key=lambda o: o.mono) + track.obs[-8:]
        self.last_assignment = tuple(assigned)
        # Another plate where this track's plate was, and this one not seen in the same frame: the
        # vehicle has left (a slideshow, or the next car at a stop line), so its track ends now rather
        # than wait out max_gap_s and take in a look-alike plate of the next car.
        out: list[TrackResult] = []
        for t in displaced:
            if t in free:
                self._tracks.remove(t)
                if not t.published:
                    out.append(self._result(t))
        return out + self._due(mono)

    def tick(self, mono: float) -> list[TrackResult]:
        """The tracks due by time alone, for when no frame comes (a camera that stalled, died or ended)."""
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
                           t.obs[0].frame_ts, t.last.frame_ts, t.context, band_vote(t.obs), band_vote(t.obs, "dashes"))
