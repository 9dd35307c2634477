"""``livebg process IN... OUT``: recorded video through the live pipeline, every frame.

One :class:`~livebg.processor.Processor` per clip, fed frame after frame in
order (none dropped), so the refinement's warm start, the temporal stage and
the subject filter carry their state exactly as in the daemon. The result is
written under a temporary name in the output's folder (``.NAME.partial.EXT``)
and renamed at the end, so an error or Ctrl-C never leaves half a file under
the final name; an existing output is replaced only with ``overwrite``.

Several inputs run in a pool of processes (at most ``jobs``, default 2 — one
per core here), each with one thread for the net, OpenCV and numba.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livebg.offline.decode import OfflineError, VideoInput
from livebg.offline.encode import PngWriter, VideoWriter, check_encoder, output_kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessOptions:
    """What ``livebg process`` writes.

    Attributes:
        matte_only: write the alpha as a grey video (or grey PNGs) instead of the composite.
        overwrite: replace an existing output.
        progress: show a progress bar on stderr.
        codec_threads: the encoder's threads (0: FFmpeg's choice). One clip alone
            leaves a core idle while Python processes a frame; the encoder's
            threads use it (x264 is a third of the time per 720p frame). The
            pool sets 1: its processes already use the cores.
    """

    matte_only: bool = False
    overwrite: bool = False
    progress: bool = True
    codec_threads: int = 0


@dataclass
class Result:
    """What one clip took: frames written, seconds of video, wall-clock seconds."""

    source: Path
    output: Path
    frames: int = 0
    duration: float = 0.0
    seconds: float = 0.0
    stages_ms: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def partial_path(out: Path) -> Path:
    """The temporary name next to ``out``: ``.NAME.partial.EXT`` (or ``.NAME.partial/``)."""
    return out.with_name(f".{out.stem}.partial{out.suffix}")


def check_output(out: Path, overwrite: bool) -> str:
    """The output's kind; raises OfflineError when it exists (without overwrite) or cannot be."""
    kind = output_kind(out)
    check_encoder(kind)
    if out.exists() and not overwrite:
        raise OfflineError(f"{out} exists: choose another name or pass --overwrite")
    if not out.parent.is_dir():
        raise OfflineError(f"{out.parent}: no such folder for the output")
    return kind


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out`` (an existing one was allowed to go)."""
    if out.is_dir():
        old = out.with_name(f".{out.name}.old")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def process_file(source: str | Path, out: str | Path, cfg, options: ProcessOptions,
                 bar=None) -> Result:
    """Process one clip into ``out``; see the module doc.

    Args:
        source: input video file.
        out: output file (.mp4, .webm, .mov) or folder (PNG frames).
        cfg: a :class:`~livebg.config.Config` (background, refinement, subject, ...).
        options: :class:`ProcessOptions`.
        bar: a tqdm-like object (``update(n)``, ``total``), or None.

    Raises:
        OfflineError: bad input or output, as one line.
    """
    source, out = Path(source), Path(out)
    kind = check_output(out, options.overwrite)
    tmp = partial_path(out)
    _remove(tmp)
    alpha = (cfg.background.mode == "transparent" and not options.matte_only
             and kind in ("webm", "mov", "png"))
    result = Result(source, out)
    t0 = time.perf_counter()
    writer = None
    try:
        with VideoInput(source) as vin:
            if bar is not None and vin.frame_count and bar.total is None:
                bar.total = vin.frame_count
            result.duration = vin.duration
            writer, proc = _run(vin, tmp, kind, cfg, options, alpha, result, bar)
        writer.close()
        writer = None
        _replace(tmp, out)
    except BaseException:
        if writer is not None:
            writer.abort()
        _remove(tmp)
        raise
    result.seconds = time.perf_counter() - t0
    result.stages_ms = {k: v["p50"] for k, v in proc.stats.summary().items()
                        if isinstance(v, dict) and "p50" in v}
    return result


def _run(vin: VideoInput, tmp: Path, kind: str, cfg, options: ProcessOptions, alpha: bool,
         result: Result, bar):
    """Decode, process and encode every frame; returns (the open writer, the processor).

    On any error (Ctrl-C too) the writer is closed unfinished and the error goes on.
    """
    state: dict = {}  # the writer and processor, once the first frame opened them
    try:
        _loop(vin, tmp, kind, cfg, options, alpha, result, bar, state)
    except BaseException:
        if state.get("writer") is not None:
            state["writer"].abort()
        raise
    return state["writer"], state["proc"]


def _loop(vin: VideoInput, tmp: Path, kind: str, cfg, options: ProcessOptions, alpha: bool,
          result: Result, bar, state: dict) -> None:
    from livebg.factory import make_processor

    writer, proc, waiting = None, None, []
    for packet in vin.packets():
        if packet.stream.type == "audio":
            if writer is None:
                waiting.append(packet)  # the writer opens with the first video frame
            else:
                writer.mux_audio(packet)
            continue
        for item in vin.decode(packet):
            if writer is None:
                h, w = item.image.shape[:2]
                proc = make_processor(cfg, w, h)
                writer = _open_writer(tmp, kind, w, h, vin, alpha, options.codec_threads)
                state.update(writer=writer, proc=proc)
                for p in waiting:
                    writer.mux_audio(p)
                waiting.clear()
            writer.write(_render(proc, item.image, options.matte_only), item.pts)
            result.frames += 1
            if bar is not None:
                bar.update(1)
    if writer is None:
        raise OfflineError(f"{vin.path}: no video frame could be decoded")


def _open_writer(tmp: Path, kind: str, w: int, h: int, vin: VideoInput, alpha: bool,
                 threads: int):
    if kind == "png":
        return PngWriter(tmp, time_base=vin.time_base, alpha=alpha, audio=vin.audio)
    if kind == "mp4" and (w % 2 or h % 2):
        raise OfflineError(f"{vin.path}: H.264 needs an even width and height, not {w}x{h}; "
                           "write .mov or a PNG folder")
    return VideoWriter(tmp, kind, width=w, height=h, time_base=vin.time_base, rate=vin.rate,
                       alpha=alpha, audio=vin.audio, threads=threads)


def _render(proc, image: np.ndarray, matte_only: bool) -> np.ndarray:
    """The output frame: the composite (BGR or BGRA), or the matte as grey uint8 (H, W)."""
    alpha = proc.alpha(image)
    if matte_only:
        return (np.clip(alpha, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return proc.compose(image, alpha)


# --------------------------------------------------------------------------- several files


def _worker_init(queue) -> None:
    """One thread per worker process: the pool, not the threads, uses the cores."""
    import cv2

    cv2.setNumThreads(1)
    os.environ["NUMBA_NUM_THREADS"] = "1"
    global _QUEUE
    _QUEUE = queue


_QUEUE = None


class _QueueBar:
    """Progress from a worker: frames go to the parent's bar through a queue."""

    total = 0  # the parent's bar counts the total itself

    def update(self, n: int) -> None:
        _QUEUE.put(n)


def _worker(source: str, out: str, cfg, options: ProcessOptions) -> Result:
    return process_file(source, out, cfg, options, bar=_QueueBar())


def process_many(jobs: list[tuple[Path, Path]], cfg, options: ProcessOptions,
                 workers: int = 2) -> list[Result]:
    """Several clips, ``workers`` at a time in separate processes; one progress bar for all.

    Every output is checked before any work starts.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    for _, out in jobs:
        check_output(out, options.overwrite)
    total = 0
    for src, _ in jobs:
        with VideoInput(src) as vin:
            total += vin.frame_count or 0
    from dataclasses import replace

    cfg = _one_thread(cfg)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    results: list[Result] = []
    with tqdm(total=total or None, unit="frame", desc=f"{len(jobs)} files",
              disable=not options.progress, dynamic_ncols=True) as bar, \
            ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=ctx,
                                initializer=_worker_init, initargs=(queue,)) as pool:
        futures = [pool.submit(_worker, str(s), str(o), cfg, replace(options, progress=False, codec_threads=1))
                   for s, o in jobs]
        while not all(f.done() for f in futures):
            _drain(queue, bar, 0.2)
        _drain(queue, bar, 0.0)
        for f in futures:
            results.append(f.result())
    return results


def _drain(queue, bar, wait: float) -> None:
    import queue as queue_mod

    try:
        bar.update(queue.get(timeout=wait) if wait else queue.get_nowait())
        while True:
            bar.update(queue.get_nowait())
    except queue_mod.Empty:
        pass


def _one_thread(cfg):
    from livebg.config import set_value

    return set_value(cfg, "model.threads", 1)
