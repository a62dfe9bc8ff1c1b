#!/usr/bin/env python3
# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""Turns a shipped int8 model back into trainable Keras weights, so that training can go on from what ships.

Training checkpoints live outside the repository and do not outlive a session; the shipped ``.tflite``
files do. This reads every convolution's int8 weights and bias out of the TFLite file, dequantises them,
and writes them into the trainer's own network (``train_detector.build_model`` or
``train_ocr.build_model``) as ``last.weights.h5``, the file ``--init`` and ``--export-only`` take.

The converter folded each BatchNormalization into the convolution before it (weights scaled, a bias
added). Unfolding: the convolution gets the folded weights, and its BatchNormalization is set so that in
inference it adds the folded bias and nothing else, with moving statistics measured on real training
images, so that in training mode (batch statistics) the network starts as the shipped one too:
mean = m, variance = v, gamma = sqrt(v + eps), beta = bias + m, where m and v are each channel's mean and
variance of the convolution's output.

The layers are matched through the graph (each Keras layer to the TFLite op that consumes the tensors
its inputs became), not by order: the converter runs the ops in an order of its own. The result is
checked against the TFLite model on the same images (printed; exit 1 when they disagree).

    /work/train-venv/bin/python scripts/weights_from_tflite.py detector --out /work/ckpt/det_v3
    /work/train-venv/bin/python scripts/weights_from_tflite.py ocr --out /work/ckpt/ocr_v3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = Path(__file__).resolve().parents[1] / "edge_agent" / "models"
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

# Ops the converter folded into a neighbour: the Keras layer's output is its input's tensor.
_FUSED = ("BatchNormalization", "ReLU", "Dropout", "Activation", "InputLayer")
# Keras layer -> the TFLite op it became (the ones with no weights).
_PLAIN_OPS = {
    "Add": "ADD",
    "UpSampling2D": "RESIZE_NEAREST_NEIGHBOR",
    "Resizing": "RESIZE_NEAREST_NEIGHBOR",
    "MaxPooling2D": "MAX_POOL_2D",
    "ZeroPadding2D": "PAD",
    "Reshape": "RESHAPE",
}
_CONV_OPS = {"Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D"}


class TfliteGraph:
    """The ops (in the converter's order), their tensors and the constant tensors' dequantised values."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # No delegate: XNNPACK would replace the ops with delegate nodes and hide their tensors.
        self.it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.it.allocate_tensors()
        self.ops = [o for o in self.it._get_ops_details() if o["op_name"] != "DELEGATE"]
        self.tensors = {t["index"]: t for t in self.it.get_tensor_details()}
        self.input_index = int(self.it.get_input_details()[0]["index"])
        # The tensors that carry data: the input and every op's output (weights, shapes and paddings have no
        # producing op).
        self._data = {self.input_index} | {int(i) for o in self.ops for i in o["outputs"]}
        self.claimed: set[int] = set()

    def consumer(self, op_name: str, inputs: list[int], kernel_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """The first unclaimed op of this type whose tensor inputs are ``inputs`` (in any order)."""
        for op in self.ops:
            if op["index"] in self.claimed or op["op_name"] != op_name:
                continue
            data_inputs = [i for i in op["inputs"] if i in self._data]
            if sorted(data_inputs) != sorted(inputs):
                continue
            if kernel_shape is not None and tuple(self.tensors[op["inputs"][1]]["shape"]) != kernel_shape:
                continue
            self.claimed.add(op["index"])
            return op
        raise SystemExit(f"no {op_name} op takes tensors {inputs} (kernel {kernel_shape}): not this network")

    def after_rescaling(self, index: int) -> int:
        """The tensor after the input's QUANTIZE, MUL, ADD chain (Keras' Rescaling layer)."""
        for name in ("QUANTIZE", "MUL", "ADD"):
            op = self.consumer(name, [index])
            index = int(op["outputs"][0])
        return index

    def value(self, index: int) -> np.ndarray:
        """A constant tensor's float value (per-channel int8 weights and int32 biases dequantised)."""
        t = self.tensors[index]
        raw = self.it.get_tensor(index).astype(np.float64)
        q = t["quantization_parameters"]
        scales, zeros, axis = q["scales"], q["zero_points"], q["quantized_dimension"]
        if len(scales) == 0:
            return raw.astype(np.float32)
        shape = [1] * raw.ndim
        if len(scales) > 1:
            shape[axis] = len(scales)
        return ((raw - np.reshape(zeros, shape)) * np.reshape(scales, shape)).astype(np.float32)


def _inbound(layer: Any) -> tuple[list[Any], list[Any]]:
    node = layer._inbound_nodes[0]
    return list(node.input_tensors), list(node.output_tensors)


def map_weights(model: Any, graph: TfliteGraph) -> list[tuple[Any, Any | None, np.ndarray, np.ndarray]]:
    """(conv layer, the BatchNormalization after it or None, kernel, bias) for every convolution."""
    where: dict[int, int] = {}  # id(Keras tensor) -> TFLite tensor index
    convs: list[tuple[Any, Any | None, np.ndarray, np.ndarray]] = []
    bn_of: dict[int, Any] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            ins, _ = _inbound(layer)
            bn_of[id(ins[0])] = layer
    for layer in model.layers:
        kind = type(layer).__name__
        ins, outs = _inbound(layer)
        if kind == "InputLayer" or not ins:
            where[id(outs[0])] = graph.input_index
            continue
        src = [where[id(t)] for t in ins]
        if kind in _FUSED:
            where[id(outs[0])] = src[0]
        elif kind == "Rescaling":
            where[id(outs[0])] = graph.after_rescaling(src[0])
        elif kind in _CONV_OPS:
            k = layer.kernel.shape  # (kh, kw, in, out) or depthwise (kh, kw, in, mult)
            tfl_shape = (k[3], k[0], k[1], k[2]) if kind == "Conv2D" else (1, k[0], k[1], k[2] * k[3])
            op = graph.consumer(_CONV_OPS[kind], src, tfl_shape)
            w = graph.value(op["inputs"][1])
            kernel = np.transpose(w, (1, 2, 3, 0)) if kind == "Conv2D" else w.reshape(k)
            bias = graph.value(op["inputs"][2]) if len(op["inputs"]) > 2 and op["inputs"][2] >= 0 else np.zeros(k[-1])
            convs.append((layer, bn_of.get(id(outs[0])), kernel, bias.astype(np.float32)))
            where[id(outs[0])] = int(op["outputs"][0])
        elif kind in _PLAIN_OPS:
            op = graph.consumer(_PLAIN_OPS[kind], src)
            where[id(outs[0])] = int(op["outputs"][0])
        else:
            raise SystemExit(f"layer {layer.name} ({kind}) has no rule here")
    return convs


def unfold(model: Any, convs: list[tuple[Any, Any | None, np.ndarray, np.ndarray]], images: np.ndarray) -> None:
    """Writes the folded weights into the network and sets each BatchNormalization as the docstring says."""
    import keras

    for conv, bn, kernel, bias in convs:
        if bn is None:
            conv.set_weights([kernel, bias] if conv.use_bias else [kernel])
            continue
        conv.set_weights([kernel])
        eps = float(bn.epsilon)
        # For now the plain bias: gamma 1, beta bias, mean 0, variance 1 - eps.
        bn.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1 - eps)])
    with_bn = [(conv, bn, bias) for conv, bn, _, bias in convs if bn is not None]
    probe = keras.Model(model.inputs, [conv.output for conv, _, _ in with_bn])
    outs = probe.predict(images, batch_size=16, verbose=0)
    for (_, bn, bias), out in zip(with_bn, outs, strict=True):
        flat = np.asarray(out, np.float64).reshape(-1, out.shape[-1])
        m, v = flat.mean(axis=0), flat.var(axis=0)
        eps = float(bn.epsilon)
        bn.set_weights([np.sqrt(v + eps), bias + m, m, v])


def compare(model: Any, path: Path, images: np.ndarray, softmax: bool = False) -> list[float]:
    """Per output, the lowest correlation over the images between the Keras network's float output and the
    TFLite model's (int8 activations: about 0.99 when every layer is in its place, near 0 when not).
    ``softmax``: the export ends in a softmax that the training network leaves to its loss (the OCR)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    keras_out = model.predict(images.astype(np.float32), verbose=0)
    keras_out = keras_out if isinstance(keras_out, list) else [keras_out]
    worst = [1.0] * len(outs)
    for n, img in enumerate(images):
        it.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
        it.invoke()
        for k, o in enumerate(outs):
            got = it.get_tensor(o["index"])[0].astype(np.float32)
            ref = _match_output(keras_out, got.shape)[n]
            if ref.shape != got.shape:
                ref = ref.reshape(got.shape)
            if softmax:
                ref = np.exp(ref - ref.max(axis=-1, keepdims=True))
                ref /= ref.sum(axis=-1, keepdims=True)
            worst[k] = min(worst[k], float(np.corrcoef(ref.ravel(), got.ravel())[0, 1]))
    return worst


def _match_output(keras_out: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    for o in keras_out:
        if int(np.prod(o.shape[1:])) == size and o.shape[-1] == shape[-1]:
            return np.asarray(o)
    raise SystemExit(f"no Keras output of shape {shape}")


def detector_images(n: int, seed: int) -> np.ndarray:
    """Training photos (never a held-out one, ``scripts/splits.py``) and backgrounds, letterboxed grey to the
    detector's input as the reader does."""
    import train_detector as td

    rng = np.random.default_rng(seed)
    photos = [img for folder in ("plates-ro-boxes", "plates-tr-boxes")
              for img, _ in td.load_annotated(DATASETS / folder)]
    photos += [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in sorted((DATASETS / "backgrounds").glob("*.jpg"))[:200]]
    picks = rng.choice(len(photos), size=n, replace=False)
    return np.stack([td.letterbox(photos[i]) for i in picks])[..., None]


def ocr_images(n: int, seed: int) -> np.ndarray:
    """Plate crops of the training part of the EU and BR crop sets, grey, at the OCR's input."""
    from splits import held_out

    rng = np.random.default_rng(seed)
    files = [f for folder in ("eu-plate-crops", "br-plate-crops") for f in sorted((DATASETS / folder).iterdir())
             if f.suffix.lower() in (".png", ".jpg", ".jpeg") and not held_out(folder, f.name)]
    out = np.zeros((n, 32, 128, 1), np.uint8)
    for k, i in enumerate(rng.choice(len(files), size=min(n, len(files)), replace=False)):
        grey = cv2.imread(str(files[i]), cv2.IMREAD_GRAYSCALE)
        out[k, :, :, 0] = cv2.resize(grey, (128, 32), interpolation=cv2.INTER_AREA)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=("detector", "ocr"))
    ap.add_argument("--tflite", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--out", type=Path, required=True, help="folder for last.weights.h5")
    ap.add_argument("--images", type=int, default=96, help="training images for the statistics and the check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=float, default=1.0,
                    help="ocr: the network's channel multiplier (train_ocr.py --width; 1.0 is the shipped network)")
    ap.add_argument("--min-correlation", type=float, default=0.97,
                    help="lowest correlation allowed between the Keras and the TFLite outputs")
    args = ap.parse_args(argv)

    builders: dict[str, tuple[str, Callable[[int, int], np.ndarray]]] = {
        "detector": ("plate_detector.tflite", detector_images),
        "ocr": ("plate_ocr.tflite", ocr_images),
    }
    name, image_fn = builders[args.model]
    path = args.tflite or MODELS / name
    if not path.is_file():
        print(f"error: {path} not found", file=sys.stderr)
        return 2
    if args.model == "detector":
        import train_detector as td

        model = td.build_model()
    else:
        import train_ocr as to

        model = to.build_model(args.width)
    convs = map_weights(model, TfliteGraph(path))
    images = image_fn(args.images, args.seed)
    unfold(model, convs, images)
    check = image_fn(16, args.seed + 1)
    worst = compare(model, path, check, softmax=args.model == "ocr")
    print(f"{len(convs)} convolutions unfolded from {path.name}; lowest Keras-TFLite correlation per output: "
          + ", ".join(f"{w:.4f}" for w in worst))
    if min(worst) < args.min_correlation:
        print("error: the Keras network does not reproduce the TFLite model", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.out / "last.weights.h5")
    if args.model == "ocr":
        to.save_width(args.out, args.width)
    print(f"wrote {args.out / 'last.weights.h5'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
