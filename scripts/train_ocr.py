# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Train the plate OCR (a small all-convolutional CTC recogniser) and export it to TFLite.

Training data, mixed per batch (never eu-plates-dev, which is for evaluation only):
  * EU crops and the PL/RO/TR box photos labelled by the teacher (scripts/label_crops.py
    -> TSV cache);
  * BR crops whose file name carries the text;
  * plates cut from the US/BR full photos with their box and text, the box jittered
    the way a detector box would be;
  * synthetic EU plates (scripts/synth_plates.py; one- and two-row, Italian and French
    with the blue band at both ends) and the demo scene's Hershey plates;
  * with --negatives: crops where the detector fires on no plate (scripts/ocr_negatives.tsv,
    checked by eye; scripts/mine_negatives.py finds them), whose text is empty.
  * with --reader-borders: half of the photo plates' crops take the borders of a crop the reader cut
    from the shipped detector's box (scripts/reader_borders.tsv, from scripts/reader_borders.py) instead
    of random margins.
Synthetic data alone does not transfer to real plates, so real crops are the bulk (~60%).

Validation is split by source with ``scripts/splits.py`` (the same split as the detector's):
held-out images never reach training, and exact-match is logged per source at every epoch
end (Keras model) and at every export (the exported int8 model).

Two-row plates go through ``edge_agent/pipeline/alpr/two_row.side_by_side`` (loaded by file path),
exactly as the reader does: augmented detector-like crop of the whole plate -> rows laid
side by side -> 128x32.

    /work/train-venv/bin/python scripts/train_ocr.py --steps 20000            # train (resumes)
    /work/train-venv/bin/python scripts/train_ocr.py --export-only            # re-export latest

Checkpoints go to --ckpt (default /work/ckpt/ocr); a TFLite model is exported to --out every
--export-every steps so an interrupted run still leaves a usable model.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agent_module
import image_pack
import label_crops
import splits
import synth_plates as sp

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLANK = len(ALPHABET)
NUM_CLASSES = len(ALPHABET) + 1
MAX_LEN = 10
TIME_STEPS = sp.OCR_W // 4
REPO = Path(__file__).resolve().parents[1]


two_row = agent_module.load("edge_agent/pipeline/alpr/two_row.py")  # the reader's own side_by_side
# Two-row crops: the whole plate is warped to this height before the rows are laid side by side.
TWO_ROW_CROP_H = 64


@dataclass
class Sample:
    img: np.ndarray  # BGR or grey source
    quad: np.ndarray  # plate corners TL, TR, BR, BL in img
    text: str
    tight: bool  # crop sets are already cut to the plate: keep margins small
    source: str = ""  # dataset folder
    name: str = ""  # file name inside it (the unit of the validation split)
    rows: int = 1


def _clean(text: str) -> str | None:
    t = "".join(c for c in text.upper() if c.isalnum())
    return t if 4 <= len(t) <= 8 and all(c in ALPHABET for c in t) else None


def _shrink(img: np.ndarray, quad: np.ndarray, max_plate_h: float = 64.0) -> tuple[np.ndarray, np.ndarray]:
    """Keep sources small in memory; the OCR only ever sees 32 rows."""
    plate_h = float(np.linalg.norm(quad[3] - quad[0]))
    if plate_h > max_plate_h:
        s = max_plate_h / plate_h
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        quad = quad * s
    return img, quad


def load_teacher_crops(tsv: Path) -> list[Sample]:
    out: list[Sample] = []
    if not tsv.exists():
        print(f"warning: no teacher labels at {tsv}; run scripts/label_crops.py", file=sys.stderr)
        return out
    for line in tsv.read_text().splitlines():
        path, text, _score, rows, *rest = line.split("\t")
        img = cv2.imread(path)
        t = _clean(text)
        if img is None or t is None:
            continue
        src, name = Path(path).parent.name, Path(path).name
        if rest and rest[0]:
            x, y, w, h = (int(v) for v in rest[0].split(","))
            out.append(_photo_sample(img, (x, y, w, h), t, src, name))
            continue
        # Two-row crops stay whole: they are laid side by side after augmentation, the
        # way the reader does it (two_row.side_by_side).
        out.append(Sample(img, sp.full_quad(img), t, True, src, name, 2 if rows == "2" else 1))
    return out


def load_br_crops(folder: Path) -> list[Sample]:
    out: list[Sample] = []
    for p in sorted(folder.glob("*.jpg")):
        parts = p.name.split("_")
        if len(parts) < 4:
            continue
        t = _clean(parts[3].split(".")[0])
        img = cv2.imread(str(p))
        if img is None or t is None:
            continue
        img, q = _shrink(img, sp.full_quad(img))
        out.append(Sample(img, q, t, True, folder.name, p.name))
    return out


def _photo_sample(
    img: np.ndarray, box: tuple[int, int, int, int], text: str, source: str = "", name: str = ""
) -> Sample:
    """The plate with context around it, so that box jitter shows what a detector box would."""
    x, y, w, h = box
    x0, y0 = max(0, x - w // 2), max(0, y - h)
    x1, y1 = min(img.shape[1], x + w + w // 2), min(img.shape[0], y + 2 * h)
    region = img[y0:y1, x0:x1].copy()
    quad = np.array(
        [[x - x0, y - y0], [x + w - x0, y - y0], [x + w - x0, y + h - y0], [x - x0, y + h - y0]],
        np.float32,
    )
    region, quad = _shrink(region, quad)
    return Sample(region, quad, text, False, source, name)


def load_negatives(ds: Path) -> list[Sample]:
    """The crops checked to be no plate (``scripts/ocr_negatives.tsv``), as samples whose text is empty:
    where the detector sees a plate that is not one, the OCR is taught to read nothing."""
    out: list[Sample] = []
    for key, box in label_crops.load_negatives():
        folder, name = key.split("/")
        if splits.held_out(folder, name):
            raise ValueError(f"{key} is held out for validation (scripts/splits.py): not a training negative")
        img = cv2.imread(str(ds / key))
        if img is None:
            raise ValueError(f"cannot read {ds / key} (scripts/ocr_negatives.tsv)")
        out.append(_photo_sample(img, box, "", NEGATIVE_SOURCE, name))
    return out


def load_photo_plates(folder: Path) -> list[Sample]:
    """Plates cut from annotated full photos with context around them for box jitter."""
    out: list[Sample] = []
    for ann in sorted(folder.glob("*.txt")):
        fields = ann.read_text().strip().split("\t")
        if len(fields) < 6:
            continue
        t = _clean(fields[5])
        img = cv2.imread(str(folder / fields[0]))
        if img is None or t is None:
            continue
        x, y, w, h = (int(float(v)) for v in fields[1:5])
        out.append(_photo_sample(img, (x, y, w, h), t, folder.name, fields[0]))
    return out


NEGATIVE_SOURCE = "negatives"
# The share of each source in a batch: ~66% real, ~34% synthetic (a solid share of Italian/French and
# two-row plates).
MIX = {
    "eu-plate-crops": 0.21,
    "eu-plate-crops-2": 0.05,
    "plates-pl-boxes": 0.02,
    "plates-ro-boxes": 0.08,
    "plates-tr-boxes": 0.06,
    "br-plate-crops": 0.10,
    "plates-us-train": 0.08,
    "plates-br-train": 0.06,
    "synth": 0.10,
    "synth-itfr": 0.12,
    "synth-2row": 0.11,
    "demo": 0.01,
    # Only when the data holds them (load_data(..., negatives=True)): no-plate crops, text "".
    NEGATIVE_SOURCE: 0.06,
}


def load_data(
    ds: Path, labels: Path, negatives: bool = False
) -> tuple[dict[str, list[Sample]], list[Sample], list[np.ndarray]]:
    """Training samples by source, the held-out samples, and the synthetic plates' backgrounds;
    ``negatives``: with the no-plate crops of ``scripts/ocr_negatives.tsv``."""
    loaded = (
        load_teacher_crops(labels)
        + load_br_crops(ds / "br-plate-crops")
        + load_photo_plates(ds / "plates-us-train")
        + load_photo_plates(ds / "plates-br-train")
        + (load_negatives(ds) if negatives else [])
    )
    # Split by source with scripts/splits.py (shared with the detector): held-out images
    # never reach training. eu-plates-dev is never read here.
    sources: dict[str, list[Sample]] = {}
    val: list[Sample] = []
    for smp in loaded:
        assert smp.source != "eu-plates-dev"
        if splits.held_out(smp.source, smp.name):
            val.append(smp)
        else:
            sources.setdefault(smp.source, []).append(smp)
    return sources, val, load_backgrounds(ds / "backgrounds")


def save_pack(path: Path, sources: dict[str, list[Sample]], val: list[Sample], backgrounds: list[np.ndarray]) -> None:
    """Everything ``load_data`` gives, in one file that travels to a lent GPU (``image_pack``): sample
    images as grey JPEG q92 (every augmentation turns them grey; they are already shrunk to at most
    64 px of plate height), backgrounds as colour JPEG, the rest as arrays."""
    def grey(img: np.ndarray) -> np.ndarray:
        return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)

    rows = [("train", smp) for v in sources.values() for smp in v] + [("val", smp) for smp in val]
    arrays: dict[str, np.ndarray] = {
        "quad": np.stack([smp.quad.astype(np.float32) for _, smp in rows]),
        "meta": np.array([json.dumps([part, smp.text, smp.tight, smp.source, smp.name, smp.rows])
                          for part, smp in rows]),
    }
    image_pack.put(arrays, "img", [image_pack.jpeg(grey(smp.img), 92) for _, smp in rows])
    image_pack.put(arrays, "bg", [image_pack.jpeg(b, 92) for b in backgrounds])
    np.savez(path, **arrays)


def load_pack(path: Path) -> tuple[dict[str, list[Sample]], list[Sample], list[np.ndarray]]:
    z = np.load(path)
    sources: dict[str, list[Sample]] = {}
    val: list[Sample] = []
    for img, quad, meta in zip(image_pack.get(z, "img", cv2.IMREAD_GRAYSCALE), z["quad"], z["meta"], strict=True):
        part, text, tight, source, name, rows = json.loads(str(meta))
        smp = Sample(img, quad, text, tight, source, name, rows)
        (val if part == "val" else sources.setdefault(source, [])).append(smp)
    return sources, val, image_pack.get(z, "bg", cv2.IMREAD_COLOR)


def ctc_loss(y: Any, n: Any, logits: Any) -> Any:
    """Mean CTC loss of padded labels ``y`` with lengths ``n``; in ``keras.ops``, so the TF loop here and
    ``train_ocr_fit.py`` (any Keras backend) train the same thing."""
    from keras import ops

    steps = ops.full((ops.shape(logits)[0],), TIME_STEPS, dtype="int32")
    return ops.mean(ops.ctc_loss(y, logits, n, steps, mask_index=BLANK))


def load_backgrounds(folder: Path, n: int = 150, seed: int = 0) -> list[np.ndarray]:
    files = sorted(folder.glob("*.jpg"))
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(files))[:n]:
        img = cv2.imread(str(files[i]))
        if img is not None:
            out.append(cv2.resize(img, (480, int(480 * img.shape[0] / img.shape[1]))))
    return out


def _quad_aspect(quad: np.ndarray) -> float:
    w = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    h = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    return w / max(1.0, h)


def two_row_to_ocr(crop: np.ndarray) -> np.ndarray:
    """What the reader does with a two-row crop: rows side by side, then the OCR's 128x32."""
    rows: np.ndarray = two_row.side_by_side(crop)
    return cv2.resize(rows, (sp.OCR_W, sp.OCR_H), interpolation=cv2.INTER_AREA)


def augment_two_row(img: np.ndarray, quad: np.ndarray, rng: np.random.Generator, tight: bool) -> np.ndarray:
    """A detector-like crop of the whole two-row plate, then side_by_side, then 128x32."""
    h = int(rng.integers(TWO_ROW_CROP_H * 3 // 4, TWO_ROW_CROP_H * 5 // 4))
    size = (max(8, round(h * _quad_aspect(quad))), h)
    margin = (-0.02, 0.06, -0.02, 0.08) if tight else two_row.TRAIN_BORDER
    crop = sp.augment(img, quad, rng, margin=margin, persp=0.025, size=size, plate_h=(22.0, 64.0))
    return two_row_to_ocr(crop)


def _itfr_plate(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    while True:
        country, display, text = sp.random_format(rng)
        if country in ("I", "F"):
            return sp.render_row_plate(country, display, text, rng)


# The generated kinds of plate, by mix name.
SYNTH_MAKERS: dict[str, Callable[[np.random.Generator], tuple[np.ndarray, str]]] = {
    "synth": sp.render_eu_plate,
    "synth-itfr": _itfr_plate,
    "synth-2row": sp.render_two_row_plate,
    "demo": sp.demo_plate,
}


# With --reader-borders, this share of a photo plate's crops takes the borders of a crop the reader cut
# (a random row of its own folder's, ``scripts/reader_borders.py``), jittered by this much; the rest keep
# the random margins. Half: the reader's geometry without losing the variety the margins give.
READER_BORDER_SHARE = 0.5
READER_BORDER_JITTER = 0.01


def load_reader_borders() -> dict[str, np.ndarray]:
    """Per dataset folder, the reader's crop borders of its training plates (``scripts/reader_borders.tsv``)."""
    return {k: np.array(v, np.float64) for k, v in label_crops.load_reader_borders().items()}


def add_data_flags(ap: argparse.ArgumentParser) -> None:
    """The data options both trainers take (this one and ``train_ocr_fit.py``)."""
    ap.add_argument("--negatives", action="store_true",
                    help="also teach reading nothing on the no-plate crops of scripts/ocr_negatives.tsv")
    ap.add_argument("--reader-borders", action="store_true",
                    help="half of the photo plates' crops with the borders of the reader's own cuts "
                         "(scripts/reader_borders.tsv)")


class Mixer:
    """Draws augmented (grey crop, text) pairs from the sources with fixed proportions.

    ``borders`` (``load_reader_borders``): photo plates of those folders get the reader's crop borders
    for ``READER_BORDER_SHARE`` of their crops."""

    def __init__(self, sources: dict[str, list[Sample]], backgrounds: list[np.ndarray], weights: dict[str, float],
                 borders: dict[str, np.ndarray] | None = None):
        self.sources = {k: v for k, v in sources.items() if v}
        self.backgrounds = backgrounds
        self.borders = borders or {}
        names = [k for k in weights if k in self.sources or k in SYNTH_MAKERS]
        w = np.array([weights[k] for k in names], np.float64)
        self.names, self.p = names, w / w.sum()

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        name = self.names[int(rng.choice(len(self.names), p=self.p))]
        if name in SYNTH_MAKERS:
            plate, text = SYNTH_MAKERS[name](rng)
            plate, _ = _shrink(plate, sp.full_quad(plate), 72.0 if name != "synth-2row" else 110.0)
            canvas, quad = sp.place_on_background(plate, rng, self.backgrounds)
            if name == "synth-2row":
                return augment_two_row(canvas, quad, rng, tight=False), text
            return sp.augment(canvas, quad, rng), text
        s = self.sources[name][int(rng.integers(len(self.sources[name])))]
        if s.rows == 2:
            return augment_two_row(s.img, s.quad, rng, tight=s.tight), s.text
        if s.tight:
            return sp.augment(s.img, s.quad, rng, margin=(-0.03, 0.05, -0.06, 0.12), persp=0.025), s.text
        seen = self.borders.get(s.source)
        if seen is not None and rng.random() < READER_BORDER_SHARE:
            row = seen[int(rng.integers(len(seen)))] + rng.normal(0, READER_BORDER_JITTER, 4)
            return sp.augment(s.img, s.quad, rng, border=(row[0], row[1], row[2], row[3])), s.text
        return sp.augment(s.img, s.quad, rng), s.text

    def batches(self, batch: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(seed)
        while True:
            x = np.empty((batch, sp.OCR_H, sp.OCR_W, 1), np.float32)
            y = np.zeros((batch, MAX_LEN), np.int32)
            n = np.empty((batch,), np.int32)
            for i in range(batch):
                img, text = self.sample(rng)
                x[i, :, :, 0] = img
                y[i, : len(text)] = [ALPHABET.index(c) for c in text]
                n[i] = len(text)
            yield x, y, n


def prefetch(
    it: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]], depth: int = 4
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Build batches on a thread: OpenCV releases the GIL, so this overlaps the TF step."""
    q: queue.Queue[tuple[np.ndarray, np.ndarray, np.ndarray]] = queue.Queue(depth)

    def work() -> None:
        for item in it:
            q.put(item)

    threading.Thread(target=work, daemon=True).start()
    while True:
        yield q.get()


MODEL_JSON = "model.json"  # beside last.weights.h5 when the network is not the default one: {"width": w}


def model_width(ckpt: Path) -> float:
    """The channel multiplier of the network whose weights ``ckpt`` holds (1.0 unless its model.json says)."""
    meta = ckpt / MODEL_JSON
    return float(json.loads(meta.read_text()).get("width", 1.0)) if meta.is_file() else 1.0


def save_width(ckpt: Path, width: float) -> None:
    """Notes a non-default ``width`` beside the weights: export, ``--init`` and rebuild build the same network."""
    if width != 1.0:
        ckpt.mkdir(parents=True, exist_ok=True)
        (ckpt / MODEL_JSON).write_text(json.dumps({"width": width}))


def build_model(width: float = 1.0) -> object:
    """All-convolutional CRNN without the RNN: TFLite-friendly, int8-friendly, fast on one core.

    32x128 grey in, 32 time steps of NUM_CLASSES logits out (each step sees ~4 px of width
    plus a wide receptive field from the stacked 3x3s and the final 1x5 context convs).
    ``width`` scales every layer's channels (rounded to multiples of 8; 1.0 is the shipped network).
    """
    import keras
    from keras import layers

    def scaled(ch: int) -> int:
        return max(8, round(ch * width / 8) * 8)

    def block(x: object, ch: int) -> object:
        x = layers.Conv2D(scaled(ch), 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inp = keras.Input((sp.OCR_H, sp.OCR_W, 1), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inp)
    x = block(x, 24)
    x = layers.MaxPooling2D(2)(x)  # 16x64
    x = block(x, 48)
    x = block(x, 48)
    x = layers.MaxPooling2D(2)(x)  # 8x32
    x = block(x, 96)
    x = block(x, 96)
    x = layers.MaxPooling2D((2, 1))(x)  # 4x32
    x = block(x, 128)
    x = block(x, 128)
    x = layers.MaxPooling2D((2, 1))(x)  # 2x32
    head = scaled(192)
    x = layers.Conv2D(head, (2, 3), padding="valid", use_bias=False)(layers.ZeroPadding2D(((0, 0), (1, 1)))(x))
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)  # 1x32
    x = layers.Conv2D(head, (1, 5), padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.15)(x)
    x = layers.Conv2D(NUM_CLASSES, 1)(x)
    logits = layers.Reshape((TIME_STEPS, NUM_CLASSES), name="logits")(x)
    return keras.Model(inp, logits, name="plate_ocr")


def greedy_decode(probs: np.ndarray) -> list[str]:
    out = []
    for p in probs:
        ids = p.argmax(-1)
        prev, s = BLANK, []
        for i in ids:
            if i != prev and i != BLANK:
                s.append(ALPHABET[i])
            prev = i
        out.append("".join(s))
    return out


def fold(s: str) -> str:
    return s.replace("O", "0")


def export_tflite(model: object, out: Path, rep: np.ndarray, int8: bool) -> int:
    import keras
    import tensorflow as tf

    assert isinstance(model, keras.Model)
    probs = keras.layers.Softmax(name="probs")(model.output)
    infer = keras.Model(model.input, probs)

    import tempfile

    # Via a SavedModel: converting a traced function directly leaves resource-variable
    # reads in the graph, which the int8 calibrator cannot run.
    with tempfile.TemporaryDirectory() as td:
        infer.export(
            td,
            format="tf_saved_model",
            verbose=False,
            input_signature=[tf.TensorSpec([1, sp.OCR_H, sp.OCR_W, 1], tf.float32)],
        )
        conv = tf.lite.TFLiteConverter.from_saved_model(td)
        data = _convert(conv, rep, int8)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return len(data)


def _convert(conv: Any, rep: np.ndarray, int8: bool) -> bytes:
    import tensorflow as tf

    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def rep_data() -> Iterator[list[np.ndarray]]:
            for i in range(len(rep)):
                yield [rep[i : i + 1]]

        conv.representative_dataset = rep_data
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8 in: the crop is already 0..255 grey, so quantising the input is free.
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.float32
    data = conv.convert()
    assert isinstance(data, bytes)
    return data


def tflite_predict(path: Path, xs: np.ndarray) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for x in xs:
        it.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        it.invoke()
        out.append(greedy_decode(it.get_tensor(outp["index"]))[0])
    return out


def per_source_report(pred: list[str], texts: list[str], srcs: list[str]) -> tuple[float, str]:
    """Overall exact (O/0 folded) and a per-source line: ``source ok/n (pct)``, plus strict exact."""
    ok = [fold(p) == fold(t) for p, t in zip(pred, texts, strict=True)]
    strict = [p == t for p, t in zip(pred, texts, strict=True)]
    parts = []
    for src in sorted(set(srcs)):
        idx = [i for i, s in enumerate(srcs) if s == src]
        k = sum(ok[i] for i in idx)
        parts.append(f"{src} {k}/{len(idx)} ({100 * k / len(idx):.1f}%)")
    acc = sum(ok) / max(1, len(ok))
    line = (
        f"ALL {sum(ok)}/{len(ok)} ({100 * acc:.1f}%, strict {100 * sum(strict) / max(1, len(ok)):.1f}%) | "
        + " | ".join(parts)
    )
    return acc, line


def plain_crop(s: Sample) -> np.ndarray:
    """A held-out sample as validation reads it: the plain labelled box, no augmentation, no margin."""
    grey = s.img if s.img.ndim == 2 else cv2.cvtColor(s.img, cv2.COLOR_BGR2GRAY)
    if s.rows == 2:
        h = TWO_ROW_CROP_H
        w = max(8, round(h * _quad_aspect(s.quad)))
        m = cv2.getPerspectiveTransform(s.quad.astype(np.float32), sp.full_quad(np.empty((h, w))))
        crop = cv2.warpPerspective(grey, m, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        return two_row_to_ocr(crop)
    m = cv2.getPerspectiveTransform(s.quad.astype(np.float32), sp.full_quad(np.empty((sp.OCR_H, sp.OCR_W))))
    return cv2.warpPerspective(grey, m, (sp.OCR_W, sp.OCR_H), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def val_inputs(val: list[Sample]) -> np.ndarray:
    """The held-out samples as one float batch ``[N, H, W, 1]``, as the exports are scored."""
    return np.stack([plain_crop(s) for s in val])[..., None].astype(np.float32)


def validate(models: list[Path], val: list[Sample]) -> None:
    """Each model file scored on the held-out crops exactly as an export is, with its misses listed."""
    val_x = val_inputs(val)
    for model in models:
        pred = tflite_predict(model, val_x)
        _, line = per_source_report(pred, [s.text for s in val], [s.source for s in val])
        print(f"{model}: {line}", flush=True)
        for p, s in zip(pred, val, strict=True):
            if fold(p) != fold(s.text):
                print(f"  miss {s.source}/{s.name}: {s.text} read {p}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--datasets",
        type=Path,
        default=Path(os.environ.get("EDGE_AGENT_DATASETS", REPO.parent / "shared" / "datasets")),
    )
    ap.add_argument("--labels", type=Path, default=REPO.parent / "ckpt/ocr/crop_labels.tsv")  # label_crops --out
    ap.add_argument("--data", type=Path, help="a pack from train_ocr_fit.py --pack instead of --datasets/--labels")
    ap.add_argument("--ckpt", type=Path, default=REPO.parent / "ckpt" / "ocr")
    ap.add_argument("--out", type=Path, default=REPO / "edge_agent" / "models" / "plate_ocr.tflite")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--finetune-lr", type=float, default=0.0, help="constant LR instead of the cosine schedule")
    ap.add_argument("--export-every", type=int, default=1000)
    ap.add_argument("--val-every", type=int, default=500, help="steps per 'epoch': checkpoint + per-source val")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--float", action="store_true", help="export float32 instead of int8")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--calib-seed", type=int, default=1234,
                    help="seed of the int8 calibration samples (another rounding of the same weights)")
    ap.add_argument("--validate", type=Path, nargs="+", metavar="TFLITE",
                    help="only score these model files on the held-out crops (as the exports are) and stop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=float, default=None,
                    help="channel multiplier of the network (default: --ckpt's model.json, else 1.0)")
    add_data_flags(ap)
    ap.add_argument(
        "--init-weights",
        type=Path,
        help="start a new run (fresh optimiser and schedule) from these Keras weights; "
        "ignored when --ckpt holds a checkpoint",
    )
    args = ap.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    cv2.setNumThreads(1)
    import keras
    from tqdm import tqdm

    t_load = time.monotonic()
    sources, val, backgrounds = (load_pack(args.data) if args.data
                                 else load_data(args.datasets, args.labels, args.negatives))
    counts = {k: len(v) for k, v in sorted(sources.items())}
    vcounts: dict[str, int] = {}
    for smp in val:
        vcounts[smp.source] = vcounts.get(smp.source, 0) + 1
    print(
        f"data: train {counts} val {dict(sorted(vcounts.items()))} (total {len(val)}) "
        f"backgrounds={len(backgrounds)} ({time.monotonic() - t_load:.0f} s)",
        flush=True,
    )
    if args.validate:
        validate(args.validate, val)
        return 0

    val_x = val_inputs(val)
    val_t = [s.text for s in val]
    val_s = [s.source for s in val]

    mixer = Mixer(sources, backgrounds, MIX, load_reader_borders() if args.reader_borders else None)
    print("mix: " + ", ".join(f"{n} {100 * p:.1f}%" for n, p in zip(mixer.names, mixer.p, strict=True)), flush=True)
    width = args.width if args.width is not None else model_width(args.ckpt)
    model = build_model(width)
    assert isinstance(model, keras.Model)
    print(f"model params: {model.count_params()} (width {width})", flush=True)

    args.ckpt.mkdir(parents=True, exist_ok=True)
    save_width(args.ckpt, width)
    wpath, spath = args.ckpt / "last.weights.h5", args.ckpt / "state.json"
    schedule: keras.optimizers.schedules.LearningRateSchedule
    if args.finetune_lr > 0:
        # Constant and small: continue an annealed model on changed data without undoing it.
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([10**9], [args.finetune_lr] * 2)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            args.lr * 0.05, args.steps, alpha=0.02, warmup_target=args.lr, warmup_steps=500
        )
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4, clipnorm=5.0)
    opt.build(model.trainable_variables)
    step = 0
    if wpath.exists() and spath.exists():
        model.load_weights(wpath)
        state = json.loads(spath.read_text())
        step = int(state["step"])
        # A run of train_ocr_fit.py (another backend, another loop) leaves weights without an optimiser.
        ov = np.load(args.ckpt / "optimizer.npz") if (args.ckpt / "optimizer.npz").exists() else {}
        for i, v in enumerate(opt.variables):
            if f"v{i}" in ov and tuple(ov[f"v{i}"].shape) == tuple(v.shape):
                v.assign(ov[f"v{i}"])
        print(f"resumed from step {step}", flush=True)
    elif args.init_weights:
        model.load_weights(args.init_weights)
        print(f"initialised from {args.init_weights} (new optimiser, schedule from step 0)", flush=True)
    elif args.export_only and wpath.exists():
        # Weights without this loop's state: a train_ocr_fit.py run or scripts/weights_from_tflite.py.
        model.load_weights(wpath)
        print(f"loaded {wpath}", flush=True)
    elif args.export_only:
        print(f"error: no weights to export: {wpath} not found and no --init-weights", file=sys.stderr)
        return 2

    rng = np.random.default_rng(args.calib_seed)
    rep = np.concatenate(
        [
            val_x[rng.permutation(len(val_x))[:150]],
            np.stack([mixer.sample(rng)[0] for _ in range(150)])[..., None].astype(np.float32),
        ]
    )

    def do_export(final: bool = True) -> None:
        # Intermediate exports: int8 only (what ships), validated per source. The final
        # export also writes the float model and keeps int8 unless it loses reads.
        t0 = time.monotonic()
        acc_f = -1.0
        chosen: Path | None = None
        if final or args.float:
            fp = args.ckpt / "plate_ocr_float.tflite"
            export_tflite(model, fp, rep, int8=False)
            acc_f, line_f = per_source_report(tflite_predict(fp, val_x), val_t, val_s)
            print(f"step {step} val float tflite: {line_f}", flush=True)
            chosen, acc = fp, acc_f
        if not args.float:
            qp = args.ckpt / "plate_ocr_int8.tflite"
            export_tflite(model, qp, rep, int8=True)
            acc_q, line_q = per_source_report(tflite_predict(qp, val_x), val_t, val_s)
            print(f"step {step} val int8 tflite: {line_q}", flush=True)
            # int8 is ~3x faster on the Pi, but not at the price of reads.
            if acc_q >= acc_f - 0.01:
                chosen, acc = qp, acc_q
        assert chosen is not None
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_bytes(chosen.read_bytes())
        tmp.replace(args.out)
        meta = {
            "step": step,
            "val_exact": acc,
            "file": chosen.name,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (args.ckpt / "export.json").write_text(json.dumps(meta))
        print(
            f"exported {chosen.name} -> {args.out} "
            f"({args.out.stat().st_size // 1024} KB, {time.monotonic() - t0:.1f} s)",
            flush=True,
        )

    if args.export_only:
        do_export()
        return 0

    @tf.function(jit_compile=False)  # type: ignore[untyped-decorator]
    def train_step(x: tf.Tensor, y: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = ctc_loss(y, n, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    def save() -> None:
        model.save_weights(wpath)
        np.savez(args.ckpt / "optimizer.npz", **{f"v{i}": v.numpy() for i, v in enumerate(opt.variables)})
        spath.write_text(json.dumps({"step": step}))

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # `kill` (as well as Ctrl-C) saves a checkpoint and exports before exiting.
    signal.signal(signal.SIGTERM, on_term)
    batches = prefetch(mixer.batches(args.batch, args.seed + step))
    bar = tqdm(total=args.steps, initial=step, unit="step", mininterval=10.0, file=sys.stdout)
    ema = None
    t0 = t_epoch = time.monotonic()
    try:
        while step < args.steps:
            x, y, n = next(batches)
            loss = float(train_step(x, y, n))
            ema = loss if ema is None else 0.98 * ema + 0.02 * loss
            step += 1
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{ema:.3f}", ips=f"{100 * args.batch / (time.monotonic() - t0):.0f}")
                t0 = time.monotonic()
            if step % args.val_every == 0:
                pred = greedy_decode(tf.nn.softmax(model(val_x, training=False)).numpy())
                _, line = per_source_report(pred, val_t, val_s)
                now = time.monotonic()
                bar.write(
                    f"epoch {step // args.val_every} step {step} loss {ema:.3f} "
                    f"({now - t_epoch:.0f} s/epoch, {time.strftime('%H:%M:%S', time.gmtime())} UTC) "
                    f"val keras: {line}"
                )
                t_epoch = now
                save()
            if step % args.export_every == 0 and step < args.steps:
                do_export(final=False)
    except KeyboardInterrupt:
        bar.write("interrupted: saving")
    finally:
        save()
        bar.close()
    do_export()
    return 0


if __name__ == "__main__":
    sys.exit(main())
