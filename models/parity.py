#!/usr/bin/env python3
"""Compare the converted ONNX models with the TFLite reference interpreter.

Development tool (needs ``ai-edge-litert``, ``onnxruntime``, ``opencv-python``
and, without ``--wheel``, network access for pip). Run from the repository root::

    python models/parity.py [--wheel PATH] [--data DIR] [--models DIR]

Each photo in DATA/images/*.jpg is stretched to the net size (cv2 INTER_AREA),
converted to RGB float32 in [0, 1] and fed to both runtimes; the same array
goes to each, so the resize method does not affect the comparison. Prints, per
model over all photos, the max and mean absolute difference of ``probability``
and ``features`` against TFLite's reference kernels (BUILTIN_REF), of
``probability`` against TFLite's default XNNPACK path, and between those two
TFLite paths (the float32 rounding noise floor).

The reference interpreter has no kernel for MediaPipe's custom
``Convolution2DTransposeBias`` op, so the reference graph is patched first:
the custom op becomes the builtin TRANSPOSE_CONV (v3, with bias), which
implements the same transposed convolution with TFLite's own kernels, and
the op's input is added as a second graph output to check ``features``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import flatbuffers
import numpy as np
import onnxruntime as ort
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert  # noqa: E402  (sibling script)


def reference_model(tflite_bytes: bytes) -> bytes:
    """Return the TFLite model with the custom transposed conv swapped for TRANSPOSE_CONV.

    The patched model has outputs (probability NHWC [1,H,W,1], features NHWC [1,h,w,C]).
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    graph = model.subgraphs[0]
    (op,) = [op for op in graph.operators
             if model.operatorCodes[op.opcodeIndex].customCode == convert.CUSTOM_TCONV]
    padding, stride_w, stride_h = np.frombuffer(bytes(op.customOptions), "<i4")
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.TRANSPOSE_CONV
    code.version = 3  # the version that takes a bias input
    model.operatorCodes.append(code)
    shape_buffer = schema.BufferT()
    shape_buffer.data = np.array(graph.tensors[op.outputs[0]].shape, "<i4").view(np.uint8)
    model.buffers.append(shape_buffer)
    shape_tensor = schema.TensorT()
    shape_tensor.shape, shape_tensor.type = np.array([4], np.int32), schema.TensorType.INT32
    shape_tensor.buffer, shape_tensor.name = len(model.buffers) - 1, b"parity/output_shape"
    graph.tensors.append(shape_tensor)
    options = schema.TransposeConvOptionsT()
    options.padding = {1: schema.Padding.SAME, 2: schema.Padding.VALID}[int(padding)]
    options.strideW, options.strideH = int(stride_w), int(stride_h)
    features = int(op.inputs[0])
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs = np.array([len(graph.tensors) - 1, op.inputs[1], features, op.inputs[2]], np.int32)
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.TransposeConvOptions, options
    op.customOptions = None
    graph.outputs = np.array([*graph.outputs, features], np.int32)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def load_image(path: Path, height: int, width: int) -> np.ndarray:
    """Photo stretched to (height, width): float32 NHWC [1, H, W, 3], RGB in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA),
                       cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) / 255.0)[None]


class _Diff:
    """Running max / mean absolute difference between two families of arrays."""

    def __init__(self) -> None:
        self.max = self.total = self.scale = 0.0
        self.count = 0

    def add(self, a: np.ndarray, ref: np.ndarray) -> None:
        diff = np.abs(a - ref)
        self.max = max(self.max, float(diff.max()))
        self.total += float(diff.sum())
        self.count += diff.size
        self.scale = max(self.scale, float(np.abs(ref).max()))

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)


def _tflite_runner(model: bytes,
                   resolver: OpResolverType) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Callable: NHWC image -> (probability, features), both NCHW, from the TFLite runtime."""
    interp = Interpreter(model_content=model, num_threads=1,
                         experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    index_in = interp.get_input_details()[0]["index"]
    index_out = [d["index"] for d in interp.get_output_details()]

    def run(x: np.ndarray) -> list[np.ndarray]:
        interp.set_tensor(index_in, x)
        interp.invoke()
        return [interp.get_tensor(i).transpose(0, 3, 1, 2) for i in index_out]

    return run


def compare(spec: convert.ModelSpec, tflite_bytes: bytes, onnx_path: Path,
            images: list[Path]) -> dict[str, _Diff]:
    """Differences over ``images``: ONNX vs TFLite's reference kernels and vs its default
    (XNNPACK) path, and the two TFLite paths against each other as a noise floor."""
    model = reference_model(tflite_bytes)
    tfl_ref = _tflite_runner(model, OpResolverType.BUILTIN_REF)
    tfl_xnn = _tflite_runner(model, OpResolverType.AUTO)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    diffs = {k: _Diff() for k in ("prob_ref", "prob_xnn", "floor", "feat_ref")}
    for path in images:
        x = load_image(path, spec.height, spec.width)
        (ref_prob, ref_feat), (xnn_prob, _) = tfl_ref(x), tfl_xnn(x)
        prob, feat = sess.run(["probability", "features"], {"image": x.transpose(0, 3, 1, 2)})
        diffs["prob_ref"].add(prob, ref_prob)
        diffs["prob_xnn"].add(prob, xnn_prob)
        diffs["floor"].add(xnn_prob, ref_prob)
        diffs["feat_ref"].add(feat, ref_feat)
    return diffs


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    default_data = Path(os.environ.get("LIVEBG_TEST_DATA", here.parent.parent / "shared" / "data"
                                       / "portraits"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="use this already-downloaded wheel")
    parser.add_argument("--data", type=Path, default=default_data,
                        help="folder with images/*.jpg (default: %(default)s)")
    parser.add_argument("--models", type=Path, default=here, help="folder with the .onnx files")
    args = parser.parse_args(argv)
    images = sorted((args.data / "images").glob("*.jpg"))
    if not images:
        parser.error(f"no photos in {args.data / 'images'}")
    with tempfile.TemporaryDirectory() as tmp:
        files = convert.read_wheel(args.wheel or convert.fetch_wheel(Path(tmp)))
    for spec in convert.MODELS:
        d = compare(spec, files[spec.inner_path], args.models / spec.onnx_name, images)
        print(f"{spec.key} ({spec.height}x{spec.width}, {len(images)} photos), max / mean abs diff:")
        for key, label in (("prob_ref", "probability, ONNX vs TFLite reference kernels"),
                           ("prob_xnn", "probability, ONNX vs TFLite default (XNNPACK)"),
                           ("floor", "probability, TFLite XNNPACK vs reference kernels"),
                           ("feat_ref", "features,    ONNX vs TFLite reference kernels")):
            print(f"  {label}: {d[key].max:.2e} / {d[key].mean:.2e}"
                  + (f" (|features| up to {d[key].scale:.0f})" if key == "feat_ref" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
