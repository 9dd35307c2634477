"""Folders and files the daemon makes for the user, checked the way OpenSSH and systemd do.

Policy (one line and no change on disk when a check fails):

* A folder livebg keeps private state in (the runtime folder holding the
  control socket and its lock) must be a real directory (not a symlink) owned
  by this user (``st_uid == os.getuid()``, so the check means something as
  root too) with no group or other permission bits. A missing one is created
  with mode 0700 by us; an existing one is never chmod-ed.
* Any other folder a path goes through on the way (the parent of the runtime
  folder, the folder of a ``daemon.socket`` chosen by the user) must belong to
  this user or root and must not be writable by group or others unless its
  sticky bit is set (like ``/tmp``): otherwise another user could swap what
  is inside.
* Files are opened with ``O_NOFOLLOW`` (a symlink planted in place of the lock
  is refused, never followed) and checked with ``fstat`` after opening.
* A file written for the user (a snapshot) goes to a temporary name in the
  same folder and is then linked or renamed into place, so a reader never
  sees half a file, an existing file is never replaced unless asked, and a
  symlink, FIFO or device at the name is refused instead of written through.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

#: ``sizeof(sockaddr_un.sun_path)`` on Linux, less the terminating NUL.
MAX_SOCKET_PATH = 107


class UnsafePath(RuntimeError):
    """A path livebg was asked to use is unsafe or unusable; the message says what to do."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISREG, "regular file"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def check_nul_free(path: str | os.PathLike) -> None:
    if "\x00" in os.fspath(path):
        raise UnsafePath(f"{os.fspath(path)!r}: a path cannot contain a NUL character")


def check_shared_dir(path: Path) -> None:
    """Raise :class:`UnsafePath` unless ``path`` is a folder others cannot tamper with.

    Owned by this user or root; not writable by group or others unless sticky.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise UnsafePath(f"{path}: cannot use this folder ({e.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path} is a {_kind(st.st_mode)}, not a folder")
    if st.st_uid not in (os.getuid(), 0):
        raise UnsafePath(f"{path} belongs to {_owner(st.st_uid)}, not to you: livebg will "
                         "not put its files there; choose a folder of your own")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafePath(f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}"
                         ") without the sticky bit: livebg will not put its files there; "
                         "choose a folder of your own")


def private_dir(path: Path) -> Path:
    """``path`` as a folder only this user can use, created (mode 0700) if missing.

    Missing parents are created 0700 too; an existing parent must pass
    :func:`check_shared_dir`. An existing ``path`` is checked, never chmod-ed.

    Raises:
        UnsafePath: it is a symlink or not a folder, belongs to someone else,
            or is open to group or others; the message says what to do.
    """
    path = Path(path)
    check_nul_free(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        parent = path.parent
        if not parent.exists():
            private_dir(parent)
        else:
            check_shared_dir(parent)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # made at the same moment, by us or by someone else: checked below
        except OSError as e:
            raise UnsafePath(f"{path}: cannot create this folder ({e.strerror})") from None
        st = os.lstat(path)
    except OSError as e:
        raise UnsafePath(f"{path}: cannot use this folder ({e.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path} is a {_kind(st.st_mode)}, not a folder: livebg will not use "
                         "it; remove it, or set XDG_RUNTIME_DIR or daemon.socket elsewhere")
    if st.st_uid != os.getuid():
        raise UnsafePath(f"{path} belongs to {_owner(st.st_uid)}, not to you (someone may be "
                         "trying to intercept livebg): livebg will not use it; remove it, or "
                         "set XDG_RUNTIME_DIR or daemon.socket elsewhere")
    if st.st_mode & 0o077:
        raise UnsafePath(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):04o}):"
                         f" livebg keeps its control socket only in a private folder; run "
                         f"`chmod 700 {path}` if it is yours")
    return path


def check_socket_path(path: Path) -> bool:
    """True when ``path`` holds a socket of ours (maybe stale), False when it is free.

    Raises:
        UnsafePath: too long for a Unix socket, or an existing path that is not
            a socket (a file, folder, link...: never deleted), or someone
            else's socket.
    """
    check_nul_free(path)
    n = len(os.fsencode(path))
    if n > MAX_SOCKET_PATH:
        raise UnsafePath(f"{path}: too long for a Unix socket ({n} bytes, at most "
                         f"{MAX_SOCKET_PATH}); choose a shorter daemon.socket")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise UnsafePath(f"{path}: cannot use it as the control socket ({e.strerror})") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise UnsafePath(f"{path} exists and is a {_kind(st.st_mode)}, not a socket: livebg "
                         "will not replace it; set daemon.socket to a new path (or empty for "
                         "the default)")
    if st.st_uid != os.getuid():
        raise UnsafePath(f"{path} is a socket of {_owner(st.st_uid)}, not yours: livebg will "
                         "not replace it; set daemon.socket to a path of your own")
    return True


def _open_own_file(path: Path, flags: int, what: str) -> int:
    """``os.open(path, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)``,
    kept only when it is a regular file of this user; ``what`` names it in the errors."""
    flags |= os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symbolic link: livebg does not follow links for its "
                             f"{what}; remove it") from None
        raise UnsafePath(f"{path}: cannot open the {what} ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        kind = _kind(st.st_mode) if not stat.S_ISREG(st.st_mode) else \
            f"file of {_owner(st.st_uid)}"
        raise UnsafePath(f"{path} is a {kind}, not a {what} of yours: remove it")
    return fd


def open_lock(path: Path) -> int:
    """Open (create, mode 0600) the lock file ``path``: never through a symlink, never a FIFO.

    Returns the descriptor (``O_CLOEXEC``). Raises :class:`UnsafePath` when the
    name is a symlink or anything but a regular file of this user.
    """
    return _open_own_file(path, os.O_RDWR, "lock file")


def open_log(path: Path) -> int:
    """Open ``path`` for appending (created 0600 in a :func:`private_dir`): never through a
    symlink, never a FIFO or device, never another user's file.

    Returns the descriptor (``O_CLOEXEC``, blocking). Raises :class:`UnsafePath` otherwise.
    """
    path = Path(path)
    private_dir(path.parent)
    fd = _open_own_file(path, os.O_WRONLY | os.O_APPEND, "log")
    os.set_blocking(fd, True)
    return fd


def check_new_file(path: Path, *, overwrite: bool = False) -> Path:
    """Raise :class:`UnsafePath` unless ``data`` may be written at ``path``.

    Free, or (with ``overwrite``) a regular file; never a symlink, FIFO,
    device or folder; its folder must exist.
    """
    path = Path(path)
    check_nul_free(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UnsafePath(f"{path}: {e.strerror}") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{path} is a {_kind(st.st_mode)}: livebg writes only to a new "
                             "regular file; choose another name")
        if not overwrite:
            raise UnsafePath(f"{path} already exists: choose another name, or add --overwrite "
                             "to replace it")
    if not path.parent.is_dir():
        raise UnsafePath(f"{path.parent}: no such folder")
    return path


def write_new_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, after :func:`check_new_file`.

    The bytes go to a temporary file in the same folder (mode 0666 less the
    umask, like ``open``), which is then hard-linked to ``path`` (fails if the
    name was taken meanwhile) or, with ``overwrite``, renamed over it.

    Raises:
        UnsafePath: as :func:`check_new_file`, or a write error (disk full...).
    """
    path = check_new_file(path, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise UnsafePath(f"{path} already exists: choose another name, or add "
                                 "--overwrite to replace it") from None
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
                check_new_file(path)  # no hard links here (FAT...): check again, then rename
                os.replace(tmp, path)
    except OSError as e:
        raise UnsafePath(f"{path}: cannot write ({e.strerror})") from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
