# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""The training loop the ``train_*_fit.py`` scripts share: ``keras.Model.fit`` on any Keras backend (JAX
or PyTorch on a lent GPU, where TensorFlow is not installed), for a fixed *wall time*.

- Data: worker processes run a trainer's own batch generator and hand (x, y) numpy batches over a
  bounded queue. They are forked before Keras loads a backend (a forked CUDA context is unusable).
- Schedule: linear warm-up, then cosine to 2% of the peak, over the share of the wall time spent,
  so a run ends with its schedule finished however fast the machine is; set every ``--epoch-steps``.
- Output: ``last.weights.h5`` (Keras' own format, the same on every backend) every ``--save-every``
  seconds and at the end, written atomically, plus ``state.json``; the TensorFlow trainers'
  ``--export-only --ckpt DIR`` turn it into the shipped TFLite model.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


def add_arguments(ap: argparse.ArgumentParser, batch: int, lr: float) -> None:
    ap.add_argument("--pack", type=Path, help="write the training data to this file (it travels) and exit")
    ap.add_argument("--data", type=Path, default=None, help="a pack from --pack (default: read the datasets)")
    ap.add_argument("--out", type=Path, default=Path("fit_out"), help="folder for last.weights.h5")
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (.weights.h5)")
    ap.add_argument("--minutes", type=float, default=7.0, help="wall time of training")
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    ap.add_argument("--warmup", type=float, default=0.05, help="share of the time spent warming up")
    ap.add_argument("--epoch-steps", type=int, default=200, help="steps between schedule updates and logs")
    ap.add_argument("--workers", type=int, default=max((os.cpu_count() or 2) - 1, 1))
    ap.add_argument("--save-every", type=float, default=60.0, help="seconds between weight saves")
    ap.add_argument("--seed", type=int, default=0)


def _worker(batches: Callable[[int], Iterator[Batch]], seed: int, q: Any) -> None:
    # A forked child inherits the parent's Python signal handlers (a caller's graceful-stop handler, say):
    # terminate() must end a worker blocked on a full queue, or the parent's exit waits for it forever.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for b in batches(seed):
        q.put(b)


def start_workers(batches: Callable[[int], Iterator[Batch]], seed: int, workers: int) -> Any:
    """``workers`` processes, each running ``batches(its own seed)`` into one bounded queue."""
    import cv2

    # One OpenCV thread per process, set before the fork: a child that inherits a live thread pool
    # (the parent resized images while loading) can hang on its lock.
    cv2.setNumThreads(1)
    ctx = mp.get_context("fork")
    q = ctx.Queue(maxsize=4 * workers)
    for w in range(workers):
        ctx.Process(target=_worker, args=(batches, seed * 1000 + w, q), daemon=True).start()
    return q


def lr_at(frac: float, peak: float, warmup: float) -> float:
    """Linear warm-up from peak/10, then cosine to 2% of peak, over the fraction of wall time spent."""
    if frac < warmup:
        return peak * (0.1 + 0.9 * frac / warmup)
    c = min((frac - warmup) / (1 - warmup), 1.0)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * c)))


def train(model: Any, trainer: Any, loss: Callable[[Any, Any], Any], q: Any, args: argparse.Namespace,
          prepare: Callable[[np.ndarray], np.ndarray] = lambda x: x.astype(np.float32)) -> None:
    """Fits ``trainer`` (which shares ``model``'s layers) on the queue's batches for ``args.minutes``;
    saves ``model``'s weights. ``prepare`` turns a queued x into the model's input."""
    import keras

    def feed() -> Iterator[Batch]:
        while True:
            x, y = q.get()
            yield prepare(x), y.astype(np.float32)

    trainer.compile(optimizer=keras.optimizers.AdamW(args.lr * 0.1, weight_decay=1e-4, clipnorm=5.0), loss=loss)
    args.out.mkdir(parents=True, exist_ok=True)
    budget = args.minutes * 60.0
    t0 = time.time()
    state = {"saved": t0, "epoch_t": t0, "steps": 0.0}

    def save() -> None:
        tmp = args.out / "tmp.weights.h5"
        model.save_weights(tmp)
        os.replace(tmp, args.out / "last.weights.h5")  # never a half-written file
        (args.out / "state.json").write_text(json.dumps({"step": int(state["steps"]), "time": time.time(),
                                                         "backend": keras.backend.backend()}))
        state["saved"] = time.time()

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            trainer.optimizer.learning_rate = lr_at((time.time() - t0) / budget, args.lr, args.warmup)
            state["epoch_t"] = time.time()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            state["steps"] += 1
            # A slow machine must not overrun its lease by a whole epoch.
            if time.time() - t0 >= budget + 30:
                trainer.stop_training = True

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            now = time.time()
            rate = args.epoch_steps * args.batch / (now - state["epoch_t"])  # approximate on a cut-short epoch
            lr = float(keras.ops.convert_to_numpy(trainer.optimizer.learning_rate))
            print(f"epoch {epoch + 1}: loss {(logs or {}).get('loss', float('nan')):.4f} lr {lr:.2e} "
                  f"{rate:.0f} samples/s queue {q.qsize()} {(now - t0) / 60:.1f}/{args.minutes:.1f} min",
                  flush=True)
            if now - t0 >= budget:
                trainer.stop_training = True
            if trainer.stop_training or now - state["saved"] >= args.save_every:
                save()

    print(f"keras {keras.__version__} on {keras.backend.backend()}, {args.workers} data workers", flush=True)
    trainer.fit(feed(), steps_per_epoch=args.epoch_steps, epochs=10**6, verbose=0, callbacks=[Clock()])
    save()
    print(f"done: {args.out / 'last.weights.h5'} after {int(state['steps'])} steps, "
          f"{(time.time() - t0) / 60:.1f} min", flush=True)
