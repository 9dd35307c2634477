"""Writing ``livebg process`` results: H.264 .mp4, VP9 .webm, ProRes 4444 .mov, PNG folders.

The kind comes from the output's name (:func:`output_kind`). Video frames keep
the input's timestamps (its time base and every frame's pts, so a variable
frame rate stays variable). Audio packets are copied unchanged where the
container takes the codec (:data:`COPYABLE`); otherwise they are re-encoded
(AAC for .mp4, Opus for .webm) and the log says so. A PNG folder has no audio;
its ``timestamps.csv`` keeps each frame's time.

Which encoders exist depends on the FFmpeg inside PyAV's wheel; a missing one is
a one-line :class:`OfflineError` naming an output that works.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from livebg.offline.decode import OfflineError

log = logging.getLogger(__name__)

VIDEO_KINDS = {".mp4": "mp4", ".webm": "webm", ".mov": "mov"}
"""Output suffix -> kind; anything without a suffix is a PNG folder."""

ENCODERS = {"mp4": "libx264", "webm": "libvpx-vp9", "mov": "prores_ks"}
ALTERNATIVE = {"mp4": ".mov (ProRes) or a PNG folder", "webm": ".mov (ProRes 4444, with alpha)",
               "mov": ".webm (VP9, with alpha) or a PNG folder"}
COPYABLE = {"mp4": {"aac", "mp3", "opus", "alac", "ac3", "eac3", "flac"},
            "webm": {"opus", "vorbis"}, "mov": None}
"""Audio codecs each container takes as they are (None: any)."""
AUDIO_ENCODER = {"mp4": "aac", "webm": "libopus", "mov": "aac"}


def output_kind(path: str | Path) -> str:
    """``mp4``, ``webm``, ``mov`` or ``png`` (a folder) for an output path.

    Raises:
        OfflineError: a suffix that is none of these.
    """
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "png"
    if suffix in VIDEO_KINDS:
        return VIDEO_KINDS[suffix]
    raise OfflineError(f"{path}: cannot write {suffix} files; name the output .mp4 (H.264), "
                       ".webm (VP9, alpha), .mov (ProRes 4444, alpha) or a folder (PNG frames)")


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def check_encoder(kind: str) -> None:
    """Raises OfflineError when this PyAV build lacks the encoder ``kind`` needs."""
    if kind in ENCODERS and not has_encoder(ENCODERS[kind]):
        raise OfflineError(f"this PyAV build has no {ENCODERS[kind]} encoder for .{kind}: "
                           f"write {ALTERNATIVE[kind]} instead")


class VideoWriter:
    """One output video file (a context manager; :meth:`close` finishes it).

    Args:
        path: the file to write (its suffix picks the container).
        kind: ``mp4``, ``webm`` or ``mov``.
        width, height: frame size in pixels.
        time_base: the input stream's time base; every frame's pts is in it.
        rate: nominal frame rate (for the encoder's rate control).
        alpha: frames are BGRA and the alpha is kept (.webm, .mov).
        audio: the input's audio streams, copied or re-encoded.
        threads: encoder threads (0: FFmpeg's choice).
    """

    def __init__(self, path: Path, kind: str, *, width: int, height: int, time_base: Fraction,
                 rate: Fraction, alpha: bool, audio: list, threads: int = 0):
        check_encoder(kind)
        self.path, self.kind, self.alpha = Path(path), kind, alpha
        self.container = av.open(str(path), "w")
        try:
            self.stream = self._video_stream(width, height, time_base, rate, threads)
            self.audio = {a.index: self._audio_stream(a) for a in audio}
        except BaseException:
            self.container.close()
            raise
        self._last_pts: int | None = None

    def _video_stream(self, width, height, time_base, rate, threads):
        opts = {"mp4": ("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}),
                "webm": ("libvpx-vp9", "yuva420p" if self.alpha else "yuv420p",
                         {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8",
                          "row-mt": "1"}),
                "mov": ("prores_ks", "yuva444p10le" if self.alpha else "yuv444p10le",
                        {"profile": "4", "vendor": "apl0"})}[self.kind]
        codec, pix_fmt, options = opts
        stream = self.container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.thread_count = threads
        if self.kind == "webm" and self.alpha:
            stream.metadata["alpha_mode"] = "1"
        return stream

    def _audio_stream(self, src):
        allowed = COPYABLE[self.kind]
        name = src.codec_context.name
        if allowed is None or name in allowed:
            return ("copy", self.container.add_stream_from_template(src))
        encoder = AUDIO_ENCODER[self.kind]
        log.info("%s: audio %s cannot go into .%s as it is: re-encoded as %s",
                 self.path.name, name, self.kind, encoder)
        rate = 48000 if encoder == "libopus" else src.codec_context.sample_rate
        out = self.container.add_stream(encoder, rate=rate)
        out.layout = src.codec_context.layout
        decoder = av.CodecContext.create(name, "r")
        decoder.extradata = src.codec_context.extradata
        decoder.sample_rate, decoder.layout = src.codec_context.sample_rate, src.codec_context.layout
        resampler = av.AudioResampler(format=out.codec_context.codec.audio_formats[0].name,
                                      layout=out.layout, rate=rate)
        return ("encode", out, decoder, resampler)

    def write(self, image: np.ndarray, pts: int | None) -> None:
        """One frame: BGR uint8 (H, W, 3), BGRA (H, W, 4) or grey (H, W); ``pts`` in time_base."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.shape[2] == 4 and not self.alpha:
            image = _flatten(image)
        frame = av.VideoFrame.from_ndarray(image, format="bgra" if image.shape[2] == 4 else "bgr24")
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = 0 if self._last_pts is None else self._last_pts + 1
        frame.pts, frame.time_base = pts, self.stream.codec_context.time_base
        self._last_pts = pts
        self.container.mux(self.stream.encode(frame))

    def mux_audio(self, packet: av.Packet) -> None:
        """One audio packet of the input (or a flush packet, whose pts is None)."""
        entry = self.audio.get(packet.stream.index)
        if entry is None:
            return
        if entry[0] == "copy":
            if packet.dts is None:
                return
            packet.stream = entry[1]
            self.container.mux(packet)
            return
        _, out, decoder, resampler = entry
        frames = decoder.decode(packet if packet.dts is not None else None)
        for frame in frames:
            for f in resampler.resample(frame):
                f.pts = None
                self.container.mux(out.encode(f))

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        try:
            self.container.mux(self.stream.encode(None))
            for entry in self.audio.values():
                if entry[0] == "encode":
                    for f in entry[3].resample(None) or []:
                        self.container.mux(entry[1].encode(f))
                    self.container.mux(entry[1].encode(None))
        finally:
            self.container.close()

    def abort(self) -> None:
        """Close without flushing (the file is deleted by the caller)."""
        try:
            self.container.close()
        except av.FFmpegError:
            pass


def _flatten(bgra: np.ndarray) -> np.ndarray:
    """BGRA -> BGR over black (premultiplied), for outputs without an alpha channel."""
    a = bgra[..., 3:4].astype(np.uint16)
    return ((bgra[..., :3].astype(np.uint16) * a + 127) // 255).astype(np.uint8)


class PngWriter:
    """A folder of ``000000.png`` frames (BGRA keeps its alpha) and ``timestamps.csv``."""

    def __init__(self, folder: Path, *, time_base: Fraction, alpha: bool, audio: list):
        self.folder, self.time_base, self.alpha = Path(folder), time_base, alpha
        self.folder.mkdir(parents=True)
        self._times = self.folder.joinpath("timestamps.csv").open("w")
        self._times.write("frame,seconds\n")
        self._n = 0
        if audio:
            log.info("%s: a PNG folder has no audio track; the audio is left out", folder.name)

    def write(self, image: np.ndarray, pts: int | None) -> None:
        if image.ndim == 3 and image.shape[2] == 4 and not self.alpha:
            image = _flatten(image)
        name = self.folder / f"{self._n:06d}.png"
        if not cv2.imwrite(str(name), image):
            raise OfflineError(f"{name}: cannot write (disk full?)")
        seconds = "" if pts is None else f"{float(pts * self.time_base):.6f}"
        self._times.write(f"{self._n},{seconds}\n")
        self._n += 1

    def mux_audio(self, packet) -> None:
        pass

    def close(self) -> None:
        self._times.close()

    def abort(self) -> None:
        self._times.close()
