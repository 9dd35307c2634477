"""The MediaPipe selfie-segmentation architecture as a readable PyTorch module.

Development tool (needs the ``train`` extra: torch, onnx); livebg never
imports it at run time. :class:`SelfieNet` is the graph that
``models/convert.py`` writes to ONNX, layer for layer, so that
:func:`load_onnx_weights` can fill it from ``selfie_segmentation_landscape.onnx``
(or the square file) and :func:`export_onnx` can write a trained copy back
with the same contract: input ``image`` [1, 3, H, W] RGB in [0, 1], outputs
``probability`` [1, 1, H, W] and ``features`` [1, 16, H/2, W/2].

Shape: a MobileNetV3-style encoder (stem at 1/2, blocks at 1/4, 1/8 and
1/16 of the input, squeeze-and-excitation in most of them), an LR-ASPP-like
attention head at 1/16, then three decoder steps that upsample 2x, add the
encoder's skip (gated by a global-pool attention) and refine it, and a 2x2
stride-2 transposed convolution from the 1/2-resolution ``features`` to the
logits. H and W must be multiples of 16.

TensorFlow's SAME padding puts the odd pixel of a stride-2 convolution at
the bottom/right; the stride-2 convolutions here pad explicitly to match it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    """x * sigmoid(conv(relu(conv(global_avg_pool(x))))), channels ``c`` -> ``mid`` -> ``c``."""

    def __init__(self, c: int, mid: int):
        super().__init__()
        self.reduce = nn.Conv2d(c, mid, 1)
        self.expand = nn.Conv2d(mid, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * s


class Block(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise (stride 1 or 2), optional SE, 1x1 project.

    ``hswish`` picks hard-swish (else ReLU) after the expand and depthwise
    convs; ``pads`` (left, right, top, bottom) is the TF SAME padding of the
    depthwise conv; the residual is added when shapes match (stride 1,
    ``cin == cout``).
    """

    def __init__(self, cin: int, exp: int, cout: int, k: int, stride: int, se: int | None,
                 hswish: bool):
        super().__init__()
        self.expand = nn.Conv2d(cin, exp, 1)
        self.dw = nn.Conv2d(exp, exp, k, stride=stride, groups=exp)
        self.se = SqueezeExcite(exp, se) if se else None
        self.project = nn.Conv2d(exp, cout, 1)
        self.act = F.hardswish if hswish else F.relu
        half = (k - 1) // 2
        # For an even input size, SAME with stride 2 pads k-2 in total, odd pixel at the end.
        self.pads = (half, half, half, half) if stride == 1 else (half - 1, half, half - 1, half)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.expand(x))
        y = self.act(self.dw(F.pad(y, self.pads)))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return y + x if self.residual else y


class DecoderStep(nn.Module):
    """Upsample 2x, project to the skip's width, gate and add the skip, then refine.

    up = conv1x1(bilinear2x(x)); s = skip * SE-gate(skip + up) + up;
    r = relu(conv1x1(s)); out = r + relu(dw3x3(r)).
    """

    def __init__(self, cin: int, c: int):
        super().__init__()
        self.up = nn.Conv2d(cin, c, 1)
        self.gate_reduce = nn.Conv2d(c, c, 1)
        self.gate_expand = nn.Conv2d(c, c, 1)
        self.mix = nn.Conv2d(c, c, 1)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        g = (skip + up).mean((2, 3), keepdim=True)
        g = torch.sigmoid(self.gate_expand(F.relu(self.gate_reduce(g))))
        r = F.relu(self.mix(skip * g + up))
        return r + F.relu(self.dw(r))


class SelfieNet(nn.Module):
    """MediaPipe selfie segmentation (106k parameters); see the module docstring.

    ``forward(image)`` takes float32 (N, 3, H, W) RGB in [0, 1] and returns
    ``(logits (N, 1, H, W), features (N, 16, H/2, W/2))``; the probability is
    ``sigmoid(logits)`` (see :class:`Exported` for the ONNX outputs).
    """

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2)
        self.blocks = nn.ModuleList([
            Block(16, 16, 16, 3, 2, 8, hswish=False),                 # 1/4
            Block(16, 72, 24, 3, 2, None, hswish=False),              # 1/8
            Block(24, 88, 24, 3, 1, None, hswish=False),
            Block(24, 96, 32, 5, 2, 24, hswish=True),                 # 1/16
            Block(32, 128, 32, 5, 1, 32, hswish=True),
            Block(32, 128, 32, 5, 1, 32, hswish=True),
            Block(32, 96, 32, 5, 1, 24, hswish=True),
            Block(32, 96, 32, 5, 1, 24, hswish=True),
        ])
        self.head = nn.Conv2d(32, 128, 1)
        self.head_gate = nn.Conv2d(32, 128, 1)
        self.dec8 = DecoderStep(128, 24)
        self.dec4 = DecoderStep(24, 16)
        self.dec2 = DecoderStep(16, 16)
        self.classifier = nn.ConvTranspose2d(16, 1, 2, stride=2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = F.hardswish(self.stem(F.pad(image, (0, 1, 0, 1))))
        x, skips = x2, []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (0, 2):  # the 1/4 and 1/8 maps feed the decoder
                skips.append(x)
        x4, x8 = skips
        gate = torch.sigmoid(self.head_gate(x.mean((2, 3), keepdim=True)))
        y = F.relu(self.head(x)) * gate
        feats = self.dec2(self.dec4(self.dec8(y, x8), x4), x2)
        return self.classifier(feats), feats


class Exported(nn.Module):
    """The ONNX-facing wrapper: ``image -> (probability, features)``."""

    def __init__(self, net: SelfieNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, feats = self.net(image)
        return torch.sigmoid(logits), feats


def _conv_params(net: SelfieNet) -> list[nn.Module]:
    """The net's Conv2d/ConvTranspose2d layers in the order the ONNX graph runs them."""
    layers: list[nn.Module] = [net.stem]
    for b in net.blocks:
        layers += [b.expand, b.dw]
        if b.se is not None:
            layers += [b.se.reduce, b.se.expand]
        layers.append(b.project)
    layers += [net.head, net.head_gate]
    for d in (net.dec8, net.dec4, net.dec2):
        layers += [d.up, d.gate_reduce, d.gate_expand, d.mix, d.dw]
    return layers + [net.classifier]


def load_onnx_weights(net: SelfieNet, path: str | Path) -> SelfieNet:
    """Copy the weights of a ``models/convert.py`` ONNX file into ``net`` (in place).

    The ONNX graph lists its Conv nodes in run order, except that the head's
    two 1x1 convs (on the last block's output and on its global pool) appear
    in that order too; shapes are checked layer by layer.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    layers = _conv_params(net)
    if len(nodes) != len(layers):
        raise ValueError(f"{path}: {len(nodes)} conv nodes, the module has {len(layers)}")
    with torch.no_grad():
        for node, layer in zip(nodes, layers):
            w, b = inits[node.input[1]], inits[node.input[2]]
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise ValueError(f"{node.name}: weight {w.shape} != {tuple(layer.weight.shape)}")
            layer.weight.copy_(torch.from_numpy(w.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))
    return net


def export_onnx(net: SelfieNet, template: str | Path, path: str | Path,
                metadata: dict[str, str] | None = None, doc: str = "") -> bytes:
    """Write ``net`` as ONNX into ``path`` and return the bytes.

    The graph is ``template``'s (a ``models/convert.py`` file of the same
    architecture and input size) with every Conv/ConvTranspose weight and
    bias replaced by ``net``'s, so the contract (input ``image``, outputs
    ``probability`` and ``features``), the op set and the speed are the
    template's. ``torch.onnx.export`` of this module was measured slower
    (6.0 ms -> 9.2 ms per 256x144 frame, one thread): it writes each
    asymmetric SAME padding as a Pad subgraph and hard-swish as two ops.
    ``metadata`` replaces the model's metadata_props; ``doc`` its doc string.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(template))
    inits = {i.name: i for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    layers = _conv_params(net)
    if len(nodes) != len(layers):
        raise ValueError(f"{template}: {len(nodes)} conv nodes, the module has {len(layers)}")
    for node, layer in zip(nodes, layers):
        for name, value in ((node.input[1], layer.weight), (node.input[2], layer.bias)):
            array = value.detach().cpu().numpy().astype("float32")
            if tuple(array.shape) != tuple(inits[name].dims):
                raise ValueError(f"{node.name}: {name} {array.shape} != {list(inits[name].dims)}")
            inits[name].CopyFrom(numpy_helper.from_array(array, name))
    model.producer_name, model.producer_version = "livebg-models-train", "1"
    model.doc_string = model.graph.doc_string = doc
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString(deterministic=True)
    Path(path).write_bytes(data)
    return data
