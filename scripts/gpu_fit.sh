#!/bin/bash
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
#
# Trains on a lent GPU machine (the workplace's `device` tool), from the repository root, with the
# ignored folders .gpu/ (packs, initial weights, font) and .whl/ (keras, namex, optree wheels) carried:
#
#     MINUTES=7 bash scripts/gpu_fit.sh detector|ocr
#
# Two runs side by side, each with half the machine's cores for data: A fine-tunes the shipped
# model (.gpu/<what>_init.weights.h5), B trains from scratch. Weights, state and logs land in
# $OUT/a and $OUT/b; the model cards say how to prepare .gpu/ and how to export and score the result.
# A_LR, B_LR: the two runs' peak learning rates (1e-3, 3e-3); B_FLAGS: more flags for B (the OCR's
# wider network: B_FLAGS="--width 1.25").
set -u
what=${1:?detector or ocr}
case $what in
    detector) script=scripts/train_detector_fit.py; pack=.gpu/det_pack.npz ;;
    ocr) script=scripts/train_ocr_fit.py; pack=.gpu/ocr_pack.npz; export EDGE_AGENT_PLATE_FONT=.gpu/OSP-DIN.ttf ;;
    *) echo "gpu_fit.sh: detector or ocr, not $what" >&2; exit 2 ;;
esac
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 KERAS_BACKEND=jax  # two processes share the GPU
smoke='import keras, numpy as np; m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]); m.compile("adam", "mse"); m.fit(np.ones((8, 2)), np.ones((8, 1)), verbose=0); print(keras.backend.backend(), "ok")'
if ! python3 -c "import jax, sys; sys.exit(jax.devices()[0].platform != 'gpu')" || ! python3 -c "$smoke"; then
    export KERAS_BACKEND=torch
    python3 -c "$smoke" || exit 1
fi
workers=$(( ($(nproc) - 2) / 2 )); [ "$workers" -ge 1 ] || workers=1
python3 $script --data $pack --minutes "${MINUTES:-7}" --out "$OUT/a" --init ".gpu/${what}_init.weights.h5" --lr "${A_LR:-1e-3}" \
    --workers $workers --seed 11 > "$OUT/a.log" 2>&1 &
python3 $script --data $pack --minutes "${MINUTES:-7}" --out "$OUT/b" --lr "${B_LR:-3e-3}" --workers $workers --seed 12 ${B_FLAGS:-} \
    > "$OUT/b.log" 2>&1 &
wait
tail -n 3 "$OUT/a.log" "$OUT/b.log"
