# Copyright 2026 The edge-agent authors. Licensed under the Apache License, Version 2.0.
"""``scripts/weights_from_tflite.py`` reads the shipped models' graphs and weights as they are.

The Keras half (writing the weights into the trainer's network and checking it against the TFLite model)
needs the training environment; the tool checks itself there on every run (it exits 1 when the network it
built does not reproduce the TFLite model). Here: the TFLite half, on the shipped files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import weights_from_tflite as wft

MODELS = Path(__file__).resolve().parents[1] / "edge_agent" / "models"


@pytest.mark.parametrize(("name", "convs"), [("plate_detector.tflite", 41), ("plate_ocr.tflite", 10)])
def test_every_convolution_is_found_with_its_int8_weights(name: str, convs: int) -> None:
    graph = wft.TfliteGraph(MODELS / name)
    ops = [o for o in graph.ops if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(ops) == convs
    for op in ops:
        t = graph.tensors[op["inputs"][1]]
        w = graph.value(op["inputs"][1])
        assert w.dtype == np.float32 and w.shape == tuple(t["shape"])
        q = t["quantization_parameters"]
        shape = [1] * w.ndim
        shape[q["quantized_dimension"]] = len(q["scales"])
        steps = w / np.reshape(q["scales"], shape)
        # Dequantised int8: whole steps of each channel's scale, within the int8 range.
        assert np.allclose(steps, np.rint(steps), atol=1e-3)
        assert np.abs(steps).max() <= 127.5
        assert np.abs(graph.value(op["inputs"][2])).max() > 0  # the folded bias is there


def test_the_first_convolution_takes_the_rescaled_input() -> None:
    graph = wft.TfliteGraph(MODELS / "plate_detector.tflite")
    rescaled = graph.after_rescaling(graph.input_index)
    op = graph.consumer("CONV_2D", [rescaled], (16, 3, 3, 1))
    assert graph.tensors[op["outputs"][0]]["shape"].tolist() == [1, 160, 160, 16]


def test_a_layer_the_graph_does_not_hold_is_refused() -> None:
    graph = wft.TfliteGraph(MODELS / "plate_ocr.tflite")
    rescaled = graph.after_rescaling(graph.input_index)
    with pytest.raises(SystemExit, match="not this network"):
        graph.consumer("CONV_2D", [rescaled], (32, 3, 3, 1))  # the OCR's first layer has 24 channels
    graph.consumer("CONV_2D", [rescaled], (24, 3, 3, 1))
    with pytest.raises(SystemExit, match="not this network"):
        graph.consumer("CONV_2D", [rescaled], (24, 3, 3, 1))  # each op answers one layer only


def test_a_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert wft.main(["detector", "--tflite", str(tmp_path / "none.tflite"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
