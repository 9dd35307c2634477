#!/usr/bin/env python3
"""Rebuild the shipped ONNX segmentation models from MediaPipe's TFLite files.

Development tool, not a runtime dependency of livebg: it needs ``pip``, the
``tflite`` flatbuffer reader and ``onnx``. Run from the repository root::

    python models/convert.py [--out DIR] [--wheel PATH]

It downloads the pinned ``mediapipe`` wheel with pip (no dependencies,
hash-checked; mediapipe is never installed), checks the SHA-256 of the two
selfie-segmentation ``.tflite`` files inside it, converts both graphs and
writes ``selfie_segmentation.onnx`` (1x3x256x256), ``selfie_segmentation_landscape.onnx``
(1x3x144x256), ``manifest.json`` and ``LICENSE-mediapipe.txt`` into DIR
(default: this folder). The output is byte-for-byte reproducible: fixed
opset, IR version and producer, names taken from the TFLite graph, no
timestamps.

ONNX contract (float32, NCHW throughout; the NHWC->NCHW change is done on
the weights here, so the graph has no Transpose nodes):

* input ``image``        [1, 3, H, W]: RGB in [0, 1], frame stretched to H x W.
* output ``probability`` [1, 1, H, W]: person probability in [0, 1].
* output ``features``    [1, 16, H/2, W/2]: the decoder feature map that the
  final 2x2 stride-2 transposed-convolution classifier reads (free to expose).

Op mapping (TFLite -> ONNX opset 17):

* DEQUANTIZE of a float16 constant -> folded into a float32 initializer.
* CONV_2D -> Conv; kernel OHWI -> OIHW. SAME padding becomes explicit pads
  with the odd pixel at the end, as TensorFlow does.
* DEPTHWISE_CONV_2D -> Conv with group=C_in; kernel 1HWO -> O1HW.
* Convolution2DTransposeBias (MediaPipe custom op; 12 bytes of int32 custom
  options {padding, stride_w, stride_h}, padding in the C enum
  TfLitePadding: 1=SAME, 2=VALID) -> ConvTranspose with bias; kernel
  OHWI -> IOHW.
* ADD / MUL -> Add / Mul (NCHW broadcasting of [1,C,1,1] matches NHWC's
  [1,1,1,C]); RELU -> Relu; HARD_SWISH -> HardSwish; LOGISTIC -> Sigmoid.
  A fused RELU becomes a Relu node after the op, which ONNX Runtime fuses
  back (these graphs have none: they use separate RELU ops).
* AVERAGE_POOL_2D over the whole map, and MEAN over H,W with keep_dims ->
  GlobalAveragePool (the squeeze-and-excitation blocks).
* RESIZE_BILINEAR -> Resize(mode=linear) with constant ``sizes``;
  half_pixel_centers -> "half_pixel", align_corners -> "align_corners",
  neither -> "asymmetric".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.Padding import Padding

PACKAGE = "mediapipe"
VERSION = "0.10.14"
WHEEL = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
WHEEL_LICENSE = "mediapipe-0.10.14.dist-info/LICENSE"
LICENSE_ID = "Apache-2.0"
REBUILD_COMMAND = "python models/convert.py"
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17
PRODUCER = ("livebg-models-convert", "1")
CUSTOM_TCONV = b"Convolution2DTransposeBias"


@dataclass(frozen=True)
class ModelSpec:
    """One TFLite file in the wheel and the ONNX file made from it.

    ``tflite_size`` is in bytes; ``height`` x ``width`` is the net input size in pixels.
    """

    key: str
    inner_path: str
    tflite_sha256: str
    tflite_size: int
    onnx_name: str
    height: int
    width: int


MODELS = (
    ModelSpec("square", "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
              "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c", 249505,
              "selfie_segmentation.onnx", 256, 256),
    ModelSpec("landscape",
              "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
              "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd", 250145,
              "selfie_segmentation_landscape.onnx", 144, 256),
)


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _check(data: bytes, expected: str, what: str) -> bytes:
    """Return ``data`` if its SHA-256 is ``expected``; raise ValueError otherwise."""
    if sha256(data) != expected:
        raise ValueError(f"{what}: sha256 {sha256(data)} != pinned {expected}")
    return data


def fetch_wheel(dest: Path) -> Path:
    """Download the pinned wheel into ``dest`` with pip (hash-checked) and return its path."""
    req = dest / "requirements.txt"
    req.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--platform", "manylinux_2_17_x86_64",
                    "--python-version", "3.11", "--implementation", "cp",
                    "--require-hashes", "-r", str(req), "-d", str(dest)], check=True)
    return dest / WHEEL


def read_wheel(wheel: Path) -> dict[str, bytes]:
    """Check the wheel's hash and return {inner path: bytes} for both models and the licence."""
    _check(wheel.read_bytes(), WHEEL_SHA256, wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        files = {s.inner_path: _check(zf.read(s.inner_path), s.tflite_sha256, s.inner_path)
                 for s in MODELS}
        files[WHEEL_LICENSE] = zf.read(WHEEL_LICENSE)
    return files


def _same_pads(size: list[int], k: list[int], stride: list[int], dil: list[int]) -> list[int]:
    """TF SAME padding for (H, W) as ONNX pads [top, left, bottom, right]; odd pixel at the end."""
    total = [max((-(-n // s) - 1) * s + (kk - 1) * d + 1 - n, 0)
             for n, kk, s, d in zip(size, k, stride, dil)]
    return [t // 2 for t in total] + [t - t // 2 for t in total]


class _Converter:
    """Walks one TFLite subgraph in order and emits the equivalent NCHW ONNX nodes."""

    def __init__(self, buf: bytes) -> None:
        self.model = tflite.Model.GetRootAs(buf, 0)
        self.graph = self.model.Subgraphs(0)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.consts: dict[int, np.ndarray] = {}  # tensor index -> value, TFLite layout
        self.names: dict[int, str] = {}  # tensor index -> ONNX name, where renamed

    # -- tensors -------------------------------------------------------------
    def shape(self, t: int) -> list[int]:
        return [int(d) for d in self.graph.Tensors(t).ShapeAsNumpy()]

    def name(self, t: int) -> str:
        return self.names.get(t) or self.graph.Tensors(t).Name().decode()

    def const(self, t: int) -> np.ndarray | None:
        """Constant value of tensor ``t`` (DEQUANTIZE outputs included), else None."""
        if t in self.consts:
            return self.consts[t]
        tensor = self.graph.Tensors(t)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int):  # empty buffer: an activation
            return None
        dtype = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}[tensor.Type()]
        return data.view(dtype).reshape(self.shape(t))

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
        return name

    def operand(self, t: int) -> str:
        """ONNX name for an op input; constants become initializers (4-D ones in NCHW)."""
        value = self.const(t)
        if value is None:
            return self.name(t)
        if value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        return self.init(self.name(t), value.astype(np.float32))

    def emit(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))

    def emit_act(self, op_type: str, inputs: list[str], out: int, act: int, **attrs: Any) -> None:
        """Emit ``op_type`` producing tensor ``out``, followed by its fused activation."""
        if act == Act.NONE:
            return self.emit(op_type, inputs, self.name(out), **attrs)
        pre = self.name(out) + "/pre_act"
        self.emit(op_type, inputs, pre, **attrs)
        if act != Act.RELU:
            raise NotImplementedError(f"fused activation {act}")
        self.emit("Relu", [pre], self.name(out))

    # -- ops -----------------------------------------------------------------
    def conv(self, op: Any, ins: list[int], out: int, depthwise: bool) -> None:
        opts = tflite.DepthwiseConv2DOptions() if depthwise else tflite.Conv2DOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        w = self.const(ins[1])
        # OHWI -> OIHW for conv; 1HWO -> O1HW for depthwise (group = C_in).
        w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)
        group = self.shape(ins[0])[3] if depthwise else 1
        kh, kw = w.shape[2:]
        strides = [opts.StrideH(), opts.StrideW()]
        dil = [opts.DilationHFactor(), opts.DilationWFactor()]
        pads = [0, 0, 0, 0]
        if opts.Padding() == Padding.SAME:
            pads = _same_pads(self.shape(ins[0])[1:3], [kh, kw], strides, dil)
        inputs = [self.name(ins[0]), self.init(self.name(ins[1]), w)]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.operand(ins[2]))
        self.emit_act("Conv", inputs, out, opts.FusedActivationFunction(), group=group,
                      kernel_shape=[kh, kw], strides=strides, dilations=dil, pads=pads)

    def binary(self, op: Any, ins: list[int], out: int, op_type: str) -> None:
        opts = tflite.AddOptions() if op_type == "Add" else tflite.MulOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        self.emit_act(op_type, [self.operand(i) for i in ins], out, opts.FusedActivationFunction())

    def avg_pool(self, op: Any, ins: list[int], out: int) -> None:
        opts = tflite.Pool2DOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        if ([opts.FilterHeight(), opts.FilterWidth()] != self.shape(ins[0])[1:3]
                or opts.Padding() != Padding.VALID):
            raise NotImplementedError("AVERAGE_POOL_2D that is not a global average")
        self.emit_act("GlobalAveragePool", [self.name(ins[0])], out, opts.FusedActivationFunction())

    def mean(self, op: Any, ins: list[int], out: int) -> None:
        opts = tflite.ReducerOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        axes = sorted(int(a) for a in self.const(ins[1]).ravel())
        if axes != [1, 2] or not opts.KeepDims():
            raise NotImplementedError(f"MEAN over NHWC axes {axes}, keep_dims={opts.KeepDims()}")
        self.emit("GlobalAveragePool", [self.name(ins[0])], self.name(out))

    def resize(self, op: Any, ins: list[int], out: int) -> None:
        opts = tflite.ResizeBilinearOptions()
        opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        n, _, _, c = self.shape(ins[0])
        h, w = (int(v) for v in self.const(ins[1]))
        sizes = self.init(self.name(ins[1]), np.array([n, c, h, w], np.int64))
        mode = ("align_corners" if opts.AlignCorners() else
                "half_pixel" if opts.HalfPixelCenters() else "asymmetric")
        self.emit("Resize", [self.name(ins[0]), "", "", sizes], self.name(out),
                  mode="linear", coordinate_transformation_mode=mode)

    def transpose_conv_bias(self, op: Any, ins: list[int], out: int) -> None:
        padding, stride_w, stride_h = np.frombuffer(op.CustomOptionsAsNumpy().tobytes(), "<i4")
        w = self.const(ins[1]).transpose(3, 0, 1, 2)  # OHWI -> IOHW
        _, h_in, w_in, _ = self.shape(ins[0])
        _, h_out, w_out, _ = self.shape(out)
        kh, kw = w.shape[2:]
        pads = [0, 0, 0, 0]
        if padding == 1:  # TfLitePadding SAME: crop (in-1)*s + k - out, odd pixel at the end
            th, tw = (h_in - 1) * stride_h + kh - h_out, (w_in - 1) * stride_w + kw - w_out
            if min(th, tw) < 0:
                raise NotImplementedError("SAME transposed conv that needs output_padding")
            pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
        elif padding != 2:
            raise NotImplementedError(f"TfLitePadding {padding}")
        inputs = [self.name(ins[0]), self.init(self.name(ins[1]), w), self.operand(ins[2])]
        self.emit("ConvTranspose", inputs, self.name(out), kernel_shape=[kh, kw],
                  strides=[int(stride_h), int(stride_w)], pads=pads)

    def dequantize(self, op: Any, ins: list[int], out: int) -> None:
        value = self.const(ins[0])
        if value is None or value.dtype != np.float16:
            raise NotImplementedError("DEQUANTIZE of anything but a float16 constant")
        self.consts[out] = value.astype(np.float32)

    def unary(self, op_type: str) -> Callable[[Any, list[int], int], None]:
        return lambda op, ins, out: self.emit(op_type, [self.name(ins[0])], self.name(out))

    # -- driver --------------------------------------------------------------
    def convert(self, doc: str, metadata: dict[str, str]) -> onnx.ModelProto:
        """Convert the whole subgraph; see the module docstring for the contract."""
        g = self.graph
        handlers: dict[int, Callable[[Any, list[int], int], None]] = {
            Op.CONV_2D: lambda op, i, o: self.conv(op, i, o, depthwise=False),
            Op.DEPTHWISE_CONV_2D: lambda op, i, o: self.conv(op, i, o, depthwise=True),
            Op.ADD: lambda op, i, o: self.binary(op, i, o, "Add"),
            Op.MUL: lambda op, i, o: self.binary(op, i, o, "Mul"),
            Op.AVERAGE_POOL_2D: self.avg_pool, Op.MEAN: self.mean,
            Op.RESIZE_BILINEAR: self.resize, Op.DEQUANTIZE: self.dequantize,
            Op.RELU: self.unary("Relu"), Op.HARD_SWISH: self.unary("HardSwish"),
            Op.LOGISTIC: self.unary("Sigmoid"),
        }
        ops = []
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            custom = code.CustomCode() if builtin == Op.CUSTOM else None
            if custom not in (None, CUSTOM_TCONV):
                raise NotImplementedError(f"custom op {custom!r}")
            ins = [op.Inputs(j) for j in range(op.InputsLength())]
            ops.append((op, builtin, custom, ins, op.Outputs(0)))
        if g.InputsLength() != 1 or g.OutputsLength() != 1:
            raise ValueError("expected one input and one output")
        x, y = g.Inputs(0), g.Outputs(0)
        feats = [ins[0] for _, _, custom, ins, _ in ops if custom == CUSTOM_TCONV]
        if len(feats) != 1:
            raise ValueError("expected exactly one Convolution2DTransposeBias op")
        self.names.update({x: "image", y: "probability", feats[0]: "features"})
        for op, builtin, custom, ins, out in ops:
            if custom is not None:
                self.transpose_conv_bias(op, ins, out)
            elif builtin in handlers:
                handlers[builtin](op, ins, out)
            else:
                raise NotImplementedError(f"TFLite op {tflite.opcode2name(builtin)}")

        def nchw(t: int) -> onnx.ValueInfoProto:
            n, h, w, c = self.shape(t)
            return helper.make_tensor_value_info(self.name(t), TensorProto.FLOAT, [n, c, h, w])

        graph = helper.make_graph(self.nodes, "selfie_segmentation", [nchw(x)],
                                  [nchw(y), nchw(feats[0])], list(self.inits.values()), doc)
        model = helper.make_model(graph, producer_name=PRODUCER[0], producer_version=PRODUCER[1],
                                  opset_imports=[helper.make_opsetid("", OPSET)],
                                  ir_version=IR_VERSION, doc_string=doc)
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        return model


def convert(tflite_bytes: bytes, spec: ModelSpec) -> bytes:
    """Convert one TFLite model to serialized ONNX bytes (deterministic)."""
    doc = (f"MediaPipe selfie segmentation ({spec.key}, {spec.height}x{spec.width}) from "
           f"{PACKAGE}=={VERSION}:{spec.inner_path}, {LICENSE_ID}. Rebuild: {REBUILD_COMMAND}")
    metadata = {"license": LICENSE_ID, "source": f"{PACKAGE}=={VERSION}",
                "source_path": spec.inner_path, "tflite_sha256": spec.tflite_sha256}
    return _Converter(tflite_bytes).convert(doc, metadata).SerializeToString(deterministic=True)


def _io(name: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "dtype": "float32", "shape": shape}


def build(files: dict[str, bytes], out: Path) -> dict[str, Any]:
    """Write both ONNX files, LICENSE-mediapipe.txt and manifest.json into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    for spec in MODELS:
        data = convert(files[spec.inner_path], spec)
        (out / spec.onnx_name).write_bytes(data)
        model = onnx.load_from_string(data)
        c, h, w = (d.dim_value for d in model.graph.output[1].type.tensor_type.shape.dim[1:])
        entries[spec.key] = {
            "onnx": {"file": spec.onnx_name, "sha256": sha256(data), "size": len(data),
                     "opset": OPSET, "ir_version": IR_VERSION},
            "tflite": {"path": spec.inner_path, "sha256": spec.tflite_sha256,
                       "size": spec.tflite_size},
            "inputs": [_io("image", [1, 3, spec.height, spec.width])],
            "outputs": [_io("probability", [1, 1, spec.height, spec.width]),
                        _io("features", [1, c, h, w])],
        }
    manifest = {
        "source": {"package": PACKAGE, "version": VERSION, "wheel": WHEEL,
                   "wheel_sha256": WHEEL_SHA256, "license": LICENSE_ID,
                   "license_file": "LICENSE-mediapipe.txt"},
        "rebuild": REBUILD_COMMAND,
        "input_format": "RGB float32 in [0,1], NCHW, frame stretched (not letterboxed) to HxW",
        "outputs_doc": {
            "probability": "person probability in [0,1] (sigmoid of the logits)",
            "features": "decoder feature map read by the final 2x2 stride-2 transposed-conv "
                        "classifier (half the net resolution, after the last residual add)",
        },
        "models": entries,
    }
    old = out / "manifest.json"
    if old.is_file():  # keep the entries this script does not make (livebg's, from train.py)
        for key, entry in json.loads(old.read_text()).get("models", {}).items():
            entries.setdefault(key, entry)
    text = json.dumps(manifest, indent=2)  # then put each shape list on one line:
    text = re.sub(r"\[\s+([\d,\s]+?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text)
    (out / "manifest.json").write_text(text + "\n")
    notice = (f"NOTICE: selfie_segmentation.onnx and selfie_segmentation_landscape.onnx are "
              f"converted by models/convert.py\nfrom the TFLite models in the {PACKAGE}=={VERSION} "
              f"wheel ({WHEEL}),\n{', '.join(s.inner_path for s in MODELS)}.\n"
              f"Copyright The MediaPipe Authors. Licensed under the Apache License 2.0; the "
              f"licence file of that\nwheel ({WHEEL_LICENSE}) follows verbatim.\n\n")
    (out / "LICENSE-mediapipe.txt").write_bytes(notice.encode() + files[WHEEL_LICENSE])
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output folder (default: the folder of this script)")
    parser.add_argument("--wheel", type=Path, help="use this already-downloaded wheel")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        files = read_wheel(wheel)
    manifest = build(files, args.out)
    for key, entry in manifest["models"].items():
        print(f"{key}: {args.out / entry['onnx']['file']} {entry['onnx']['size']} B "
              f"sha256 {entry['onnx']['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
