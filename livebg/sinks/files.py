"""File sinks: a video file through OpenCV, a folder of PNG frames.

Neither ever leaves a partial file under the name the user asked for, writes
through a symlink, or replaces a file without ``overwrite``: a video is
written under a hidden temporary name in the same folder and renamed at the
end, once it has been read back complete; a PNG frame is written whole and
renamed. Folders are not created on the user's behalf beyond the last one
(a PNG sequence's own folder): a typo in a parent folder is an error.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import tempfile
from pathlib import Path

import cv2
import numpy as np

from livebg.sinks.base import SinkBase, SinkError, check_frame, to_bgr

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

# Below this much free space the disk counts as full: FFmpeg's writes fail
# silently (OpenCV reports nothing), so the free space is checked every frame
# (one statvfs, about 2 us). One 720p MPEG-4 frame is 10-60 kB.
MIN_FREE_BYTES = 256 * 1024


def refuse_existing(path: Path, overwrite: bool) -> None:
    """SinkError when ``path`` exists (a dangling symlink counts) and ``overwrite`` is off."""
    if os.path.lexists(path) and not overwrite:
        what = "is a symlink" if os.path.islink(path) else "exists"
        raise SinkError(f"{path} {what}: choose another name or pass --overwrite")
    if os.path.isdir(path) and not os.path.islink(path):
        raise SinkError(f"{path} is a folder: give the name of a file")


def writable_folder(folder: Path, what: str) -> None:
    """SinkError unless ``folder`` exists and a file can be created in it.

    Args:
        folder: where the file(s) for ``what`` go.
        what: the output, for the message (``out.mp4``).
    """
    folder = Path(folder)
    if not folder.exists():
        raise SinkError(f"{what}: the folder {folder} does not exist (create it first, "
                        "or check the path)")
    if not folder.is_dir():
        raise SinkError(f"{what}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".livebg-probe-")
    except OSError as e:
        raise SinkError(f"{what}: cannot write in the folder {folder} ({_why(e)})") from None
    os.close(fd)
    os.unlink(probe)


def _why(e: OSError) -> str:
    if e.errno == errno.EROFS:
        return "read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "no permission to write there"
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    return e.strerror or str(e)


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the finished file ``tmp`` its final name ``path`` (same folder).

    Without ``overwrite`` an existing ``path`` (even one that appeared
    meanwhile, or a dangling symlink) is never replaced: ``link`` refuses.
    With it, ``rename`` replaces a symlink itself, never what it points to.
    """
    try:
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise SinkError(f"{path} exists: choose another name or pass --overwrite") from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if os.path.lexists(path):  # a file system without hard links
                raise SinkError(f"{path} exists: choose another name or pass --overwrite") \
                    from None
            os.rename(tmp, path)
            return
        os.unlink(tmp)
    except OSError as e:
        raise SinkError(f"{path}: cannot save ({_why(e)})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary name, then :func:`publish`).

    Raises:
        SinkError: the file exists (without ``overwrite``), the folder is not
            writable, or the disk is full; nothing is left under ``path`` then.
    """
    path = Path(path)
    refuse_existing(path, overwrite)
    try:
        fd, tmp = _make_temp(path.parent, path.name)
    except OSError as e:
        raise SinkError(f"{path}: cannot write ({_why(e)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        os.unlink(tmp)
        raise SinkError(f"{path}: cannot write ({_why(e)})") from None
    publish(Path(tmp), path, overwrite)


def _make_temp(folder: Path, name: str, suffix: str = "") -> tuple[int, Path]:
    """(fd, path) of a new file ``folder/.NAME.XXXXXXXX.part[SUFFIX]``.

    Unlike ``mkstemp`` (0600), the mode follows the umask like any file the user
    saves; ``O_EXCL | O_NOFOLLOW``: never an existing file or a symlink.
    """
    for _ in range(100):
        tmp = Path(folder) / f".{name}.{secrets.token_hex(4)}.part{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged user may still write in ``folder``'s file system."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


class VideoFileSink(SinkBase):
    """A video file through OpenCV: MPEG-4 in .mp4/.mov, MJPEG in .avi/.mkv.

    BGRA frames are composited over black (no common codec here keeps alpha;
    use a PNG sequence for that). The video is written to a hidden temporary
    file beside ``path`` and appears under ``path`` only after :meth:`close`
    has read it back with every frame; a full disk stops the writing with a
    SinkError and leaves nothing.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, *,
                 overwrite: bool = False):
        super().__init__(width, height)
        self.path = Path(path)
        self.overwrite = overwrite
        codec = VIDEO_SUFFIXES.get(self.path.suffix.lower())
        if codec is None:
            raise SinkError(f"{self.path}: unknown video type; use one of {', '.join(VIDEO_SUFFIXES)}")
        refuse_existing(self.path, overwrite)
        folder = self.path.parent
        writable_folder(folder, str(self.path))
        try:
            fd, self._tmp = _make_temp(folder, self.path.stem, self.path.suffix)
        except OSError as e:
            raise SinkError(f"{self.path}: cannot write in {folder} ({_why(e)})") from None
        os.close(fd)
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*codec), fps,
                                       (width, height))
        if not self._writer.isOpened():
            self._writer = None
            self._tmp.unlink()
            raise SinkError(f"{self.path}: OpenCV cannot write {codec} video in {folder}")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        check_frame(image, self.size)
        if self._writer is None:
            raise SinkError(f"{self.path}: already closed")
        self._writer.write(to_bgr(image))
        self.frames += 1
        if free_bytes(self._tmp.parent) < MIN_FREE_BYTES:
            self._discard()
            raise SinkError(f"{self.path}: the disk is full after {self.frames} frames; "
                            "nothing was saved (free some space and run again)")

    def _discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp.exists():
            self._tmp.unlink()

    def _complete(self) -> str | None:
        """None when the temporary file plays with every frame written, else why not."""
        cap = cv2.VideoCapture(str(self._tmp))
        try:
            if not cap.isOpened():
                return "cannot be read back"
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            ok, _ = cap.read()
        finally:
            cap.release()
        if not ok or n < self.frames:
            return f"reads back with {max(n, 0) if ok else 0} of {self.frames} frames"
        return None

    def close(self) -> None:
        """Finish the file and give it its name; SinkError (and no file) when it is incomplete."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if self.frames == 0:
            self._tmp.unlink()
            log.warning("%s: no frame came, so no video was saved", self.path)
            return
        problem = self._complete()
        if problem is not None:
            self._tmp.unlink()
            raise SinkError(f"{self.path}: the video {problem} (disk full?); nothing was saved")
        publish(self._tmp, self.path, self.overwrite)

    def describe(self) -> str:
        return f"video {self.path}"


class PngSequenceSink(SinkBase):
    """``DIR/00000.png``, ``DIR/00001.png``, ...; BGRA frames keep their alpha.

    ``DIR`` itself is created when its parent exists. Each frame is written
    whole under a temporary name and renamed (never through a symlink).
    """

    def __init__(self, directory: str | Path, width: int, height: int, *,
                 overwrite: bool = False):
        super().__init__(width, height)
        self.dir = Path(directory)
        self.overwrite = overwrite
        if self.dir.is_symlink() and not self.dir.is_dir():
            raise SinkError(f"{self.dir} is a symlink to nothing: give a folder")
        if self.dir.exists() and not self.dir.is_dir():
            raise SinkError(f"{self.dir} is a file, not a folder for a PNG sequence")
        if self.dir.is_dir() and any(self.dir.glob("*.png")) and not overwrite:
            raise SinkError(f"{self.dir} already holds PNG files: choose an empty folder "
                            "or pass --overwrite")
        if not self.dir.is_dir():
            writable_folder(self.dir.parent, f"{self.dir}/")
            self.dir.mkdir()
        writable_folder(self.dir, f"{self.dir}/")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        check_frame(image, self.size)
        path = self.dir / f"{self.frames:05d}.png"
        ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise SinkError(f"{path}: cannot encode the frame as PNG")
        write_file(path, data.tobytes(), overwrite=self.overwrite)
        self.frames += 1

    def describe(self) -> str:
        return f"png {self.dir}/"
