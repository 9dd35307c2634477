"""Person segmentation with the shipped MediaPipe selfie nets through ONNX Runtime.

The nets take the whole frame stretched (not letterboxed) to their input size,
RGB in [0, 1], NCHW, and return a person probability at that size. The
segmenter returns the probability untouched: thresholding would throw away
every soft edge that later stages use.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from livebg.types import Segmentation

log = logging.getLogger(__name__)

MODEL_FILES = {
    "square": "selfie_segmentation.onnx",
    "landscape": "selfie_segmentation_landscape.onnx",
    # livebg's own net: the landscape net distilled and fine-tuned by models/train.py.
    "livebg": "livebg_selfie.onnx",
}


class ModelError(RuntimeError):
    """The model file is missing, unreadable or not the net we expect."""


def model_dirs() -> list[Path]:
    """Folders searched for model files, first match wins.

    ``$LIVEBG_MODEL_DIR``; the copy inside an installed wheel
    (``livebg/models``); the repository's ``models/`` for a source checkout.
    """
    dirs = []
    if os.environ.get("LIVEBG_MODEL_DIR"):
        dirs.append(Path(os.environ["LIVEBG_MODEL_DIR"]))
    here = Path(__file__).resolve().parent.parent  # the livebg package
    dirs += [here / "models", here.parent / "models"]
    return dirs


def model_path(name: str) -> Path:
    """Path of a shipped model by name (``square``/``landscape``/``livebg``) or a file path."""
    if name not in MODEL_FILES:
        p = Path(name).expanduser()
        if p.is_file():
            return p
        raise ModelError(f"model {name!r}: not one of {', '.join(MODEL_FILES)} and no such file")
    for d in model_dirs():
        p = d / MODEL_FILES[name]
        if p.is_file():
            return p
    raise ModelError(f"model file {MODEL_FILES[name]} not found in "
                     f"{', '.join(str(d) for d in model_dirs())}: reinstall livebg "
                     "or rebuild it with `python models/convert.py` "
                     "(`python models/train.py` for livebg)")


SQUARE_MAX_ASPECT = 1.4
"""Widest frame (width / height) the square net is run on.

Measured on noisy video (``livebg clips ../shared/data/portraits --n 8
--jpeg 75 --size WxH``, refine none, temporal off; IoU / boundary IoU,
landscape vs square net): 360x640 0.961 / 0.737 vs 0.975 / 0.805; 480x480
0.939 / 0.685 vs 0.958 / 0.743; 640x480 0.888 / 0.623 vs 0.907 / 0.667;
640x360 0.916 / 0.674 vs 0.747 / 0.500. The square net wins up to 4:3 and
collapses on 16:9 (the sample: IoU 0.54 / 0.27 / 0.54 at frames 0 / 30 / 60).
"""

_warned: set[tuple[str, int, int]] = set()


def pick_model(name: str, width: int, height: int) -> str:
    """The net to run on frames of ``width`` x ``height``.

    ``auto``: the landscape net for frames wider than :data:`SQUARE_MAX_ASPECT`
    (webcams), else square. ``square`` on such a wide frame is replaced by
    ``landscape`` with one warning per frame size: the square net collapses
    there. Any other name passes unchanged.
    """
    wide = width > SQUARE_MAX_ASPECT * height
    if name == "auto":
        return "landscape" if wide else "square"
    if name == "square" and wide:
        if (name, width, height) not in _warned:
            _warned.add((name, width, height))
            log.warning("model square: not run on %dx%d frames (wider than %.1f:1), where it "
                        "loses the person; using the landscape net", width, height,
                        SQUARE_MAX_ASPECT)
        return "landscape"
    return name


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (w, h), anti-aliased.

    A large factor goes bilinear to twice the size, then by an exact 2x area
    average: 0.3 ms instead of 0.9 for 1280x720 -> 256x144, with the same
    mean IoU on the dev photos as a plain area resize (0.9151 landscape,
    0.9161 square) where plain bilinear aliases (0.9134).
    """
    w, h = size
    if image.shape[1] >= 4 * w and image.shape[0] >= 4 * h:
        image = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _session(path: Path, providers: list[str], threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Severity 4 (fatal only): a missing CUDA library is expected on most
    # machines and is reported by us in one line, not by a page of runtime errors.
    opts.log_severity_level = 4
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


CUDA_HINT = 'with an NVIDIA card: pip install "livebg[cuda]" (CUDA and cuDNN from pip)'
# Why the CUDA provider did not run, from the last try ("" when it ran or was not tried);
# `livebg doctor` shows it, the daemon logs it once.
cuda_problem = ""
_cuda_logged = False


def preload_cuda() -> str:
    """Load the CUDA and cuDNN libraries of the nvidia-* wheels (``livebg[cuda]``) if any.

    ``onnxruntime.preload_dlls()`` (onnxruntime-gpu >= 1.21) finds them in the
    environment's site-packages, where the runtime alone does not look. It
    prints what it cannot load; that text is returned (first line) instead.
    """
    import contextlib
    import io

    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return ""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            preload()
    except Exception as e:  # noqa: BLE001 - a failed preload only means CPU
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    failed = [line for line in out.getvalue().splitlines() if line.startswith("Failed to load")]
    return failed[0] if failed else ""


def _cuda_failed(reason: str) -> None:
    global cuda_problem, _cuda_logged
    cuda_problem = reason
    if not _cuda_logged:
        _cuda_logged = True
        # Plain information where an NVIDIA driver runs; a detail on every other Linux box.
        quiet = sys.platform.startswith("linux") and not Path("/proc/driver/nvidia").exists()
        log.log(logging.DEBUG if quiet else logging.INFO, "CUDA not used: %s; %s", reason,
                CUDA_HINT)


def open_session(path: Path, provider: str = "auto", threads: int = 1):
    """An ONNX Runtime session on CUDA when it really runs there, else the CPU.

    ``get_available_providers()`` lists CUDA for the GPU build even when no
    CUDA library is installed; only the providers of a created session tell
    the truth, so CUDA is tried and checked.

    Returns:
        (session, provider name actually running the graph)
    Raises:
        ModelError: the file cannot be loaded; or provider ``cuda`` was
        demanded and does not run.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    if not Path(path).is_file():
        raise ModelError(f"{path}: no such model file")
    errors = []
    if provider in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        missing = preload_cuda()
        try:
            sess = _session(path, ["CUDAExecutionProvider", "CPUExecutionProvider"], threads)
            if sess.get_providers()[0] == "CUDAExecutionProvider":
                return sess, "CUDAExecutionProvider"
            errors.append("the CUDA provider did not load ("
                          + (missing or "CUDA/cuDNN libraries missing?") + ")")
        except Exception as e:  # noqa: BLE001 - the runtime raises bare RuntimeErrors
            errors.append(str(e).splitlines()[0])
        _cuda_failed(errors[-1])
    elif provider == "cuda":
        errors.append("this onnxruntime build has no CUDA provider (install onnxruntime-gpu)")
    if provider == "cuda":
        raise ModelError(f"provider cuda requested but unusable: {'; '.join(errors)}; "
                         "use model.provider: auto or cpu")
    try:
        sess = _session(path, ["CPUExecutionProvider"], threads)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{path}: cannot load the model: {str(e).splitlines()[0]}") from None
    return sess, "CPUExecutionProvider"


class Segmenter:
    """Runs a selfie-segmentation net on BGR frames.

    Args:
        model: ``landscape``, ``square``, ``livebg`` or a path to an ``.onnx`` file with
            input ``image`` (1x3xHxW float32 RGB in [0,1]) and output
            ``probability`` (1x1xHxW).
        provider: ``auto``, ``cpu`` or ``cuda``.
        threads: intra-op threads for the CPU provider.
        features: also return the net's ``features`` output when it has one.
    """

    def __init__(self, model: str = "landscape", *, provider: str = "auto", threads: int = 1,
                 features: bool = False):
        self.name = model
        self.path = model_path(model)
        self._session, self.provider = open_session(self.path, provider, threads)
        inputs = self._session.get_inputs()
        outputs = [o.name for o in self._session.get_outputs()]
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or "probability" not in outputs:
            raise ModelError(f"{self.path}: expected one NCHW input and an output named "
                             f"'probability', found inputs {[i.name for i in inputs]} "
                             f"and outputs {outputs}")
        self._input = inputs[0].name
        _, _, h, w = inputs[0].shape
        self.input_size = (int(w), int(h))
        self._outputs = ["probability"] + (["features"] if features and "features" in outputs else [])
        log.info("segmentation: %s net %dx%d on %s, %d thread(s)", model, w, h,
                 "CUDA" if self.provider.startswith("CUDA") else "CPU", threads)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """BGR uint8 (H, W, 3) -> float32 (1, 3, h, w) RGB in [0, 1] at the net size."""
        return cv2.dnn.blobFromImage(shrink(image, self.input_size), scalefactor=1.0 / 255.0,
                                     swapRB=True)

    def segment(self, image: np.ndarray) -> Segmentation:
        """Person probability for one BGR uint8 frame of any size.

        Returns:
            Segmentation with ``probability`` float32 (h, w) in [0, 1] at the
            net's resolution and, when asked for, ``features`` (h', w', C).
        """
        if image.dtype != np.uint8:
            raise TypeError(f"frame must be uint8, got {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame must have shape (H, W, 3), got {image.shape}")
        out = self._session.run(self._outputs, {self._input: self.preprocess(image)})
        prob = out[0][0, 0]
        feats = np.ascontiguousarray(out[1][0].transpose(1, 2, 0)) if len(out) > 1 else None
        return Segmentation(probability=prob, features=feats)

    def close(self) -> None:
        self._session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
