#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Trains the plate OCR of ``train_ocr.py`` on any Keras backend for a fixed wall time: made for a lent
GPU, where TensorFlow is not installed but JAX is (``scripts/fit_loop.py``: the loop).

The data mix, the network and the CTC loss are ``train_ocr.py``'s (imported, not repeated). The
samples (teacher-labelled crops, BR crops, US/BR photo plates, held-out ones apart) travel as one pack
(``--pack``), the synthetic plates' font beside it (``EDGE_AGENT_PLATE_FONT``).

    # here: pack the samples (needs the teacher labels)
    python scripts/train_ocr_fit.py --pack .gpu/ocr_pack.npz --labels /work/ckpt/ocr3/crop_labels.tsv
    # on the GPU machine
    EDGE_AGENT_PLATE_FONT=.gpu/OSP-DIN.ttf KERAS_BACKEND=jax \\
        python scripts/train_ocr_fit.py --data .gpu/ocr_pack.npz --init V3.weights.h5 --minutes 5 --out $OUT/ocr
    # here again: the int8 model, validated per held-out source
    python scripts/train_ocr.py --export-only --ckpt DIR --data .gpu/ocr_pack.npz \\
        --out edge_agent/models/plate_ocr.tflite
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_loop
import train_ocr as to  # the OCR's data, network and loss: one home


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit_loop.add_arguments(ap, batch=128, lr=2e-3)
    ap.add_argument("--datasets", type=Path,
                    default=Path(os.environ.get("EDGE_AGENT_DATASETS", to.REPO.parent / "shared" / "datasets")))
    ap.add_argument("--labels", type=Path, default=to.REPO.parent / "ckpt/ocr/crop_labels.tsv")
    ap.add_argument("--width", type=float, default=1.0, help="channel multiplier of the network (1.0: shipped)")
    to.add_data_flags(ap)
    args = ap.parse_args()
    if args.pack:
        to.save_pack(args.pack, *to.load_data(args.datasets, args.labels, args.negatives))
        print(f"wrote {args.pack} ({args.pack.stat().st_size / 1e6:.1f} MB)", flush=True)
        return 0
    sources, val, backgrounds = (to.load_pack(args.data) if args.data
                                 else to.load_data(args.datasets, args.labels, args.negatives))
    print(f"data: {sum(len(v) for v in sources.values())} training samples, {len(val)} held out", flush=True)
    mixer = to.Mixer(sources, backgrounds, to.MIX, to.load_reader_borders() if args.reader_borders else None)

    def batches(seed: int) -> Iterator[fit_loop.Batch]:
        for x, y, n in mixer.batches(args.batch, seed):
            # Labels and their length in one target array, as Keras' fit passes one y to the loss.
            yield np.clip(x, 0, 255).astype(np.uint8), np.concatenate([y, n[:, None]], axis=1).astype(np.float16)

    q = fit_loop.start_workers(batches, args.seed, args.workers)

    model = to.build_model(args.width)
    to.save_width(args.out, args.width)
    if args.init:
        model.load_weights(args.init)  # type: ignore[attr-defined]
        print(f"initial weights: {args.init}", flush=True)

    def loss(y_true: Any, y_pred: Any) -> Any:
        from keras import ops

        return to.ctc_loss(ops.cast(y_true[:, : to.MAX_LEN], "int32"), ops.cast(y_true[:, to.MAX_LEN], "int32"), y_pred)

    fit_loop.train(model, model, loss, q, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
