#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Trains the plate detector of ``train_detector.py`` on any Keras backend for a fixed wall time: made
for a lent GPU, where TensorFlow is not installed but JAX is (``scripts/fit_loop.py``: the loop).

The data, the network and the loss are ``train_detector.py``'s (imported, not repeated). The training
pools travel as one pack (``--pack``, about 51 MB: photos shrunk so their widest plate is at most
100 px, grey JPEGs).

    # here: pack the training pools
    python scripts/train_detector_fit.py --pack .gpu/det_pack.npz
    # on the GPU machine
    KERAS_BACKEND=jax python scripts/train_detector_fit.py --data .gpu/det_pack.npz --minutes 7 --out $OUT/a
    # here again: the shipped int8 model
    python scripts/train_detector.py --export-only --ckpt DIR --out edge_agent/models/plate_detector.tflite
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_loop
import train_detector as td  # the detector's data, network and loss: one home


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit_loop.add_arguments(ap, batch=64, lr=3e-3)
    args = ap.parse_args()
    if args.pack:
        td.Pools(td.datasets_dir()).save_pack(args.pack)
        print(f"wrote {args.pack} ({args.pack.stat().st_size / 1e6:.1f} MB)", flush=True)
        return 0
    pools = td.Pools(args.data or td.datasets_dir())

    def batches(seed: int) -> Iterator[fit_loop.Batch]:
        for x, hm, reg, mask in td.batches(pools, args.batch, seed):
            # uint8 images and float16 targets: a third of the bytes through the queue.
            y = np.concatenate([hm[..., None], reg, mask[..., None]], axis=-1).astype(np.float16)
            yield x.astype(np.uint8), y

    q = fit_loop.start_workers(batches, args.seed, args.workers)

    import keras

    model = td.build_model(None)
    if args.init:
        model.load_weights(args.init)
        print(f"initial weights: {args.init}", flush=True)
    heat, reg = model.outputs
    trainer = keras.Model(model.input, keras.layers.Concatenate()([heat, reg]))

    def loss(y_true: Any, y_pred: Any) -> Any:
        focal, off, siz = td.loss_parts(y_true[..., 0], y_true[..., 1:5], y_true[..., 5], y_pred[..., 0],
                                        y_pred[..., 1:5])
        return focal + off + 2.0 * siz

    fit_loop.train(model, trainer, loss, q, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
