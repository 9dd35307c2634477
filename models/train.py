#!/usr/bin/env python3
"""Train livebg's own segmentation net: MediaPipe's landscape net, distilled and fine-tuned.

Development tool (``pip install -e .[train]``: torch 2.13.0 CPU, onnx,
onnxruntime, opencv); livebg never imports it at run time. From the
repository root::

    python models/train.py --data ../shared/data/train     # the shipped net, about an hour
    python models/train.py --data DIR --epochs 1 --steps 20 --out /tmp/x.onnx  # a quick try

What it does, from a fixed seed (``--seed``):

1. Lists ``DATA/{portraits,fullbody}/images/*.jpg`` with their
   ``masks/*.png`` and splits each folder into train and validation (a fixed
   ``--val-fraction`` per folder, shuffled by the seed). The list, the split
   and a SHA-256 of every image+mask pair go to ``--data-manifest``
   (``models/train_data.csv``); its own SHA-256 goes into the model manifest.
2. Starts :class:`selfie_net.SelfieNet` from ``--init`` (the landscape ONNX
   weights) and trains it at 256x144 on webcam-like views of the training
   photos (see :mod:`augment`): loss = boundary-weighted BCE against the mask
   + soft-IoU + ``--distill`` x BCE towards the frozen MediaPipe teacher (the
   init file, run by ONNX Runtime on the same view), which keeps what the
   teacher learned from more people than ours.
3. After every epoch scores the validation split (IoU and boundary IoU at
   the net's resolution), saves ``--checkpoint`` (resumable with
   ``--resume``) and, when the validation boundary IoU is the best so far,
   writes the ONNX file ``--out`` (same graph as the init file, see
   :func:`selfie_net.export_onnx`) and its entry ``livebg`` in
   ``models/manifest.json``. An interrupted run therefore leaves a usable net.

Runs on one torch thread by default (``--threads``): with more threads on a
shared 2-core machine torch oversubscribes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # livebg.eval.metrics, for the scores

from augment import Sample, View, make_view  # noqa: E402
from selfie_net import SelfieNet, export_onnx, load_onnx_weights  # noqa: E402

log = logging.getLogger("train")

FOLDERS = ("portraits", "fullbody")
COARSE = ("fullbody",)  # superpixel-level masks (see the data README); portraits: hand-drawn
NET_W, NET_H = 256, 144
MODEL_KEY = "livebg"
TEMPLATE = HERE / "selfie_segmentation_landscape.onnx"
"""The graph every trained net is written into (:func:`selfie_net.export_onnx`): 256x144."""


@dataclass
class TrainOptions:
    """Everything that decides the trained weights (recorded in the manifest).

    ``lr`` is Adam's peak learning rate relative to each weight tensor's
    initial RMS (each tensor gets ``lr x rms``, at least ``lr x 0.01``): with
    one absolute rate (3e-4, and 1e-4 too) the validation boundary IoU fell
    from 0.624 to 0.53-0.58 within 150 steps and the output speckled along
    image edges: the tensors' scales differ by 100x (the head's 1x1 conv
    has RMS 0.05, the last depthwise conv 6.8) and the small ones were
    overturned (cosine decay to 5% after a linear
    warm-up of ``warmup`` steps); ``steps`` is the steps per epoch (0: one
    pass over the training split; 150 x 5 epochs took 18 minutes wall here, one
    thread, on a loaded machine); ``limit`` caps the images per folder (0: all);
    ``freeze``: comma-separated parameter-name prefixes kept at their initial
    values (``stem,blocks`` is the whole encoder: only the head and decoder learn);
    ``canvas`` / ``canvas_bg`` / ``wide``: shares of composited views (and
    their background) and of 16:9 crops, ``closeup`` of a portrait's
    views that are 16:9 crops of its head, ``distract`` of views with solid
    things put behind the person (``distract_near`` of them centred on it;
    :func:`augment.make_view`); ``coarse_band``: ``mask`` or ``teacher``, the
    target inside the boundary band of the coarse (full-body) masks; ``clamp``
    (0: off) clips the logits at +-clamp in the label BCE; ``wise``: the net
    written is ``wise x trained + (1 - wise) x initial`` weights (WiSE-FT,
    :func:`wise_ft`; 1: the trained weights as they are).
    """

    epochs: int = 5
    steps: int = 150
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 100
    distill: float = 0.15
    boundary_weight: float = 4.0
    iou_weight: float = 0.5
    val_fraction: float = 0.1
    seed: int = 20261201
    limit: int = 0
    freeze: str = ""
    canvas: float = 0.3
    canvas_bg: str = "tile"
    wide: float = 0.35
    closeup: float = 0.0
    distract: float = 0.0
    distract_near: float = 0.0
    coarse_band: str = "mask"
    clamp: float = 0.0
    wise: float = 1.0


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def list_pairs(data: Path, limit: int = 0) -> list[tuple[str, Path, Path]]:
    """(folder, image path, mask path) for every pair under ``data``, sorted by name."""
    pairs = []
    for folder in FOLDERS:
        images = sorted((data / folder / "images").glob("*.jpg"))
        found = [(folder, p, data / folder / "masks" / f"{p.stem}.png") for p in images]
        found = [f for f in found if f[2].is_file()]
        pairs += found[:limit] if limit else found
    if not pairs:
        raise SystemExit(f"{data}: no {'/'.join(FOLDERS)}/images/*.jpg with masks/*.png; "
                         "pass --data pointing at the training photos")
    return pairs


def split_pairs(pairs, fraction: float, seed: int) -> dict[str, str]:
    """{image name: 'train' | 'val'}: per folder, a seeded shuffle, the first share is val."""
    split = {}
    for folder in FOLDERS:
        names = [p.name for f, p, _ in pairs if f == folder]
        order = np.random.default_rng(seed).permutation(len(names))
        n_val = max(1, round(fraction * len(names))) if len(names) > 1 else 0
        for rank, i in enumerate(order):
            split[names[i]] = "val" if rank < n_val else "train"
    return split


def write_data_manifest(pairs, split: dict[str, str], path: Path) -> str:
    """Write ``folder,image,split,sha256(image bytes + mask bytes)`` rows; return the file's hash."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["folder", "image", "split", "sha256"])
    for folder, img, mask in pairs:
        digest = hashlib.sha256(img.read_bytes() + mask.read_bytes()).hexdigest()
        w.writerow([folder, img.name, split[img.name], digest])
    path.write_text(buf.getvalue())
    return hashlib.sha256(buf.getvalue().encode()).hexdigest()


def load_sample(folder: str, img: Path, mask: Path) -> Sample:
    """Decode one pair at half resolution (the net sees at most 256x144 of it)."""
    image = cv2.imread(str(img), cv2.IMREAD_REDUCED_COLOR_2)
    m = cv2.imread(str(mask), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    if image is None or m is None:
        raise SystemExit(f"cannot read {img} or {mask}")
    if m.shape != image.shape[:2]:
        m = cv2.resize(m, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    return Sample(image=image, mask=(m > 127).astype(np.uint8), kind=folder)


class Teacher:
    """A frozen MediaPipe net on ONNX Runtime, one thread: person probability per view.

    A teacher whose input size differs from the views' (the square net,
    256x256) sees each view stretched to its size, as the segmenter would
    stretch a frame, and its probability is resized back to the view's size.
    """

    def __init__(self, path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        _, _, h, w = self.session.get_inputs()[0].shape
        self.size = (int(w), int(h))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) in [0, 1] -> (N, 1, H, W) probability."""
        h, w = x.shape[2:]
        stretch = (w, h) != self.size
        out = []
        for view in x:
            if stretch:
                view = cv2.resize(view.transpose(1, 2, 0), self.size,
                                  interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
            p = self.session.run(["probability"], {"image": np.ascontiguousarray(view[None])})[0]
            if stretch:
                p = cv2.resize(p[0, 0], (w, h), interpolation=cv2.INTER_LINEAR)[None, None]
            out.append(p)
        return np.concatenate(out)


def batch_tensors(views: list[View], teacher: Teacher | None):
    """Stack views into (image, label, weight, teacher probability) float32 tensors."""
    x = np.stack([v.image for v in views]).transpose(0, 3, 1, 2)[:, ::-1]  # BGR -> RGB
    x = np.ascontiguousarray(x, np.float32) / 255.0
    y = np.stack([v.label for v in views])[:, None]
    band = np.stack([v.band for v in views])[:, None]
    t = teacher(x) if teacher is not None else y
    return tuple(torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in (x, y, band, t))


def loss_fn(logits, y, band, t, opts: TrainOptions, coarse=None) -> torch.Tensor:
    """Boundary-weighted BCE to the label + soft-IoU + distillation off the boundary band.

    ``coarse``: float (N, 1, 1, 1), 1 for a view whose mask is coarse (the
    full-body folder's superpixel masks); with ``opts.coarse_band == "teacher"``
    the teacher's probability replaces such a mask inside its boundary band.
    """
    if coarse is not None and opts.coarse_band == "teacher":
        y = y + coarse * band * (t - y)
    w = 1.0 + opts.boundary_weight * band
    z = logits.clamp(-opts.clamp, opts.clamp) if opts.clamp > 0 else logits
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    loss = (w * bce).sum() / w.sum()
    p = torch.sigmoid(logits)
    inter = (p * y).sum((1, 2, 3))
    union = (p + y - p * y).sum((1, 2, 3))
    loss = loss + opts.iou_weight * (1 - (inter + 1) / (union + 1)).mean()
    if opts.distill > 0:
        kd = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        loss = loss + opts.distill * (kd * (1 - band)).mean()
    return loss


def lr_at(step: int, total: int, opts: TrainOptions) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to 5% of it at ``total`` steps."""
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    f = min(1.0, (step - opts.warmup) / max(1, total - opts.warmup))
    return opts.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f)))


def score(net: SelfieNet, samples: list[Sample], views: list[View]) -> dict[str, float]:
    """IoU and boundary IoU of ``net`` on fixed clean views, scored as ``livebg eval`` scores.

    The net's probability is upsampled (bilinear) to the photo's own size (as
    loaded, half the file's resolution) and thresholded at 0.5 against the
    photo's mask, with the boundary band 2% of that diagonal
    (:mod:`livebg.eval.metrics`). Scoring at the net's 256x144 instead, one net
    pixel is 3-6 photo pixels and the figure tracked eval's only loosely.
    Also per folder (``iou_portraits``, ``boundary_iou_fullbody``, ...).
    """
    from livebg.eval import metrics

    rows = []
    for i in range(0, len(views), 16):
        for s, p in zip(samples[i:i + 16], _probabilities(net, views[i:i + 16])):
            h, w = s.mask.shape
            p = cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
            m = s.mask > 0
            rows.append((s.kind, metrics.iou(p, m), metrics.boundary_iou(p, m)))
    out = {"iou": float(np.mean([r[1] for r in rows])),
           "boundary_iou": float(np.mean([r[2] for r in rows]))}
    for kind in FOLDERS:
        got = [r for r in rows if r[0] == kind]
        if got:
            out[f"iou_{kind}"] = float(np.mean([r[1] for r in got]))
            out[f"boundary_iou_{kind}"] = float(np.mean([r[2] for r in got]))
    return out


def score_views(net: SelfieNet, views: list[View]) -> dict[str, float]:
    """IoU and boundary IoU at the net's size against each view's own label.

    For the fixed *augmented* validation views (noise, JPEG, blur, composites):
    the robustness check, which a fine-tune that forgets what MediaPipe knew
    about noisy frames fails first.
    """
    from livebg.eval import metrics

    ious, bious = [], []
    for i in range(0, len(views), 16):
        for v, p in zip(views[i:i + 16], _probabilities(net, views[i:i + 16])):
            ious.append(metrics.iou(p, np.clip(v.label, 0, 1)))
            bious.append(metrics.boundary_iou(p, np.clip(v.label, 0, 1)))
    return {"iou": float(np.mean(ious)), "boundary_iou": float(np.mean(bious))}


def _probabilities(net: SelfieNet, views: list[View]) -> np.ndarray:
    """(N, H, W) float32 person probability of ``net`` (eval mode) on ``views``."""
    net.eval()
    with torch.no_grad():
        x, _, _, _ = batch_tensors(views, None)
        p = torch.sigmoid(net(x)[0]).numpy()[:, 0]
    net.train()
    return p


def _val_scores(net, val, val_views, noisy_views) -> dict[str, float]:
    """Clean scores (:func:`score`) plus ``noisy_iou`` / ``noisy_boundary_iou`` (:func:`score_views`)."""
    noisy = score_views(net, noisy_views)
    return {**score(net, val, val_views), "noisy_iou": noisy["iou"],
            "noisy_boundary_iou": noisy["boundary_iou"]}


def _fmt(s: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in s.items())


def wise_ft(net: SelfieNet, init: Path, alpha: float) -> SelfieNet:
    """A new net with weights ``alpha x net + (1 - alpha) x init`` (weight-space ensembling).

    Interpolating a fine-tuned net back towards its initial weights keeps most
    of the fine-tune's gain on data like the training data and much of the
    initial net's robustness elsewhere (Wortsman et al., "Robust fine-tuning of
    zero-shot models", 2022). Measured on six noisy clips made from the
    validation photos (JPEG 75, sss, temporal on): IoU 0.852 for a fine-tuned
    net (epoch 11, ``--clamp 6 --distill 1``), 0.901 for epoch 16 at
    ``alpha=0.5``, 0.909 at 0.3, 0.931 for MediaPipe's landscape net.
    """
    if alpha >= 1.0:
        return net
    a = load_onnx_weights(SelfieNet(), init).state_dict()
    b = net.state_dict()
    out = SelfieNet()
    out.load_state_dict({k: alpha * b[k] + (1 - alpha) * a[k] for k in a})
    return out.train()


def git_commit() -> str:
    """HEAD's commit, with ``-dirty`` when the training code (this folder's ``*.py``) differs."""
    try:
        head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "diff", "--quiet", "HEAD", "--",
                                "*.py"]).returncode != 0
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def manifest_entry(onnx_bytes: bytes, out: Path, info: dict) -> dict:
    """The ``models.livebg`` entry of manifest.json for the file just written."""
    return {
        "onnx": {"file": out.name, "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
                 "size": len(onnx_bytes), "opset": 17, "ir_version": 8},
        "trained": info,
        "license": "Apache-2.0 (weights derived from MediaPipe's selfie_segmentation_landscape, "
                   "see LICENSE-mediapipe.txt); the training photos are not shipped",
        "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, NET_H, NET_W]}],
        "outputs": [{"name": "probability", "dtype": "float32", "shape": [1, 1, NET_H, NET_W]},
                    {"name": "features", "dtype": "float32",
                     "shape": [1, 16, NET_H // 2, NET_W // 2]}],
    }


def update_manifest(path: Path, entry: dict) -> None:
    """Put ``entry`` under ``models.livebg`` in the manifest at ``path`` (others untouched)."""
    import re

    manifest = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    manifest["models"][MODEL_KEY] = entry
    text = json.dumps(manifest, indent=2)
    text = re.sub(r"\[\s+([\d,\s]+?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text)
    path.write_text(text + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = TrainOptions()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/train"),
                    help="folder with portraits/ and fullbody/ (images/*.jpg, masks/*.png)")
    ap.add_argument("--init", type=Path, default=HERE / "selfie_segmentation_landscape.onnx",
                    help="ONNX file whose weights start the net (landscape or square: the "
                         "same architecture; the net is trained and written at 256x144 either way)")
    ap.add_argument("--teacher", type=Path,
                    help="ONNX net distilled from, run at its own input size (default: --init)")
    ap.add_argument("--out", type=Path, default=HERE / "livebg_selfie.onnx")
    ap.add_argument("--manifest", type=Path, default=HERE / "manifest.json",
                    help="model manifest to put the 'livebg' entry into")
    ap.add_argument("--data-manifest", type=Path, default=HERE / "train_data.csv")
    ap.add_argument("--checkpoint", type=Path, default=Path("train-checkpoint.pt"))
    ap.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    ap.add_argument("--val-dir", type=Path,
                    help="also write the validation split here as images/ + masks/ symlinks "
                         "(for `livebg eval`)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--snapshots", type=Path,
                    help="also write every epoch's net here as epochNN.onnx (to compare them "
                         "with `livebg eval` afterwards)")
    for f, v in asdict(d).items():
        ap.add_argument("--" + f.replace("_", "-"), type=type(v), default=v)
    args = ap.parse_args(argv)
    args.teacher = args.teacher or args.init
    return args


def write_val_dir(pairs, split, out: Path) -> None:
    """Symlink the validation pairs into ``out/images`` and ``out/masks``."""
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for _, img, mask in pairs:
        if split[img.name] == "val":
            for src, dst in ((img, out / "images" / img.name), (mask, out / "masks" / mask.name)):
                if not dst.exists():
                    dst.symlink_to(src.resolve())


def _net_and_optimiser(init: Path, opts: TrainOptions):
    """The net from ``init`` (``opts.freeze`` prefixes frozen) and its Adam (per-tensor rates)."""
    net = load_onnx_weights(SelfieNet(), init).train()
    frozen = tuple(f for f in opts.freeze.split(",") if f)
    for name, p in net.named_parameters():
        p.requires_grad_(not name.startswith(frozen) if frozen else True)
    optim = torch.optim.Adam([{"params": [p], "scale": max(0.01, float(p.detach().pow(2).mean()
                                                                   .sqrt()))}
                              for p in net.parameters() if p.requires_grad], lr=opts.lr)
    return net, optim


def _write_net(net: SelfieNet, args: argparse.Namespace, info: dict) -> None:
    """Export ``net`` to ``args.out`` and record it (``info``) in ``args.manifest``."""
    meta = {"license": "Apache-2.0", "source": "livebg models/train.py",
            "init": args.init.name, "data_manifest_sha256": info["data_manifest_sha256"]}
    data = export_onnx(net, TEMPLATE, args.out, meta,
                       doc="livebg selfie segmentation: MediaPipe's landscape net "
                           "fine-tuned and distilled by models/train.py")
    update_manifest(args.manifest, manifest_entry(data, args.out, info))
    log.info("wrote %s (best val boundary IoU so far)", args.out)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    opts = TrainOptions(**{f: getattr(args, f) for f in asdict(TrainOptions())})
    torch.set_num_threads(args.threads)
    torch.manual_seed(opts.seed)
    cv2.setNumThreads(1)
    commit = git_commit()  # at the start: the run itself rewrites tracked files
    pairs = list_pairs(args.data, opts.limit)
    split = split_pairs(pairs, opts.val_fraction, opts.seed)
    data_hash = write_data_manifest(pairs, split, args.data_manifest)
    if args.val_dir:
        write_val_dir(pairs, split, args.val_dir)
    train = [load_sample(*p) for p in pairs if split[p[1].name] == "train"]
    val = [load_sample(*p) for p in pairs if split[p[1].name] == "val"]
    log.info("data: %d train, %d val pairs; manifest %s sha256 %s", len(train), len(val),
             args.data_manifest, data_hash)
    vrng = np.random.default_rng(opts.seed + 1)
    val_views = [make_view(s, train, vrng, NET_W, NET_H, augment=False) for s in val]
    noisy_views = [make_view(s, val, vrng, NET_W, NET_H, augment=True, canvas_bg="photo")
                   for s in val]
    net, optim = _net_and_optimiser(args.init, opts)
    teacher = Teacher(args.teacher) if opts.distill > 0 else None
    steps_per_epoch = opts.steps or max(1, len(train) // opts.batch)
    total = steps_per_epoch * opts.epochs
    state = {"epoch": 0, "best": -1.0, "wall": 0.0, "history": []}
    if args.resume and args.checkpoint.is_file():
        ck = torch.load(args.checkpoint, weights_only=False)
        net.load_state_dict(ck["net"])
        optim.load_state_dict(ck["optim"])
        state = ck["state"]
        log.info("resumed at epoch %d", state["epoch"])
    base = _val_scores(net, val, val_views, noisy_views)
    log.info("val before training: %s", _fmt(base))
    rng = np.random.default_rng([opts.seed, state["epoch"]])
    for epoch in range(state["epoch"], opts.epochs):
        t0 = time.perf_counter()
        losses = []
        for k in range(steps_per_epoch):
            step = epoch * steps_per_epoch + k
            for g in optim.param_groups:
                g["lr"] = lr_at(step, total, opts) * g["scale"]
            idx = rng.integers(len(train), size=opts.batch)
            views = [make_view(train[i], train, rng, NET_W, NET_H, augment=True,
                               canvas=opts.canvas, canvas_bg=opts.canvas_bg, wide=opts.wide,
                               closeup=opts.closeup, distract=opts.distract,
                               distract_near=opts.distract_near)
                     for i in idx]
            x, y, band, t = batch_tensors(views, teacher)
            coarse = torch.tensor([float(train[i].kind in COARSE) for i in idx]).view(-1, 1, 1, 1)
            loss = loss_fn(net(x)[0], y, band, t, opts, coarse)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
        state["wall"] += time.perf_counter() - t0
        state["epoch"] = epoch + 1
        rng = np.random.default_rng([opts.seed, state["epoch"]])
        s = _val_scores(net, val, val_views, noisy_views)
        state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), **s})
        log.info("epoch %d/%d loss %.4f %s (%.0f s, %.3f s/step)", epoch + 1, opts.epochs,
                 np.mean(losses), _fmt(s), time.perf_counter() - t0,
                 (time.perf_counter() - t0) / steps_per_epoch)
        if args.snapshots:
            args.snapshots.mkdir(parents=True, exist_ok=True)
            export_onnx(net, TEMPLATE, args.snapshots / f"epoch{epoch + 1:02d}.onnx",
                        {"epoch": str(epoch + 1)})
        if s["boundary_iou"] > state["best"]:
            state["best"] = s["boundary_iou"]
            written = wise_ft(net, args.init, opts.wise)
            s_written = s if written is net else _val_scores(written, val, val_views, noisy_views)
            _write_net(written, args, {
                "init": args.init.name, "teacher": args.teacher.name,
                "script": "models/train.py", "commit": commit,
                "options": asdict(opts), "epoch": epoch + 1, "steps": step + 1,
                "wall_s": round(state["wall"]), "threads": args.threads,
                "data_manifest": args.data_manifest.name, "data_manifest_sha256": data_hash,
                "val_before": base, "val": s_written, "val_trained": s,
                "torch": torch.__version__})
        torch.save({"net": net.state_dict(), "optim": optim.state_dict(), "state": state},
                   args.checkpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
