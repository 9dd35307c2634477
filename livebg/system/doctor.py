"""``livebg doctor``: check the plumbing and print the fix for each problem.

Checks, in order: the v4l2loopback module and its options (Chrome lists a
loopback device only with ``exclusive_caps=1``), the loopback devices and who
holds them, the cameras and the formats they offer, which ONNX Runtime
provider really runs the net (and why CUDA does not), the system libraries
the tray's Qt needs, the configuration file, and whether a daemon is running.
Every problem comes with the command or edit that fixes it; the
exit status is 1 when a problem was found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from livebg.system import devices as loopback

MODPROBE = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=livebg"
PERSIST = ("to load it at every boot: echo v4l2loopback | sudo tee "
           "/etc/modules-load.d/v4l2loopback.conf; echo 'options v4l2loopback devices=1 "
           "exclusive_caps=1 card_label=livebg' | sudo tee /etc/modprobe.d/v4l2loopback.conf")


@dataclass
class Check:
    """One finding. ``ok`` is False for a problem, None for plain information."""

    topic: str
    ok: bool | None
    detail: str
    fixes: list[str] = field(default_factory=list)


def _yes(value: str) -> bool:
    """First entry of a sysfs module array parameter (``Y,N,N`` or ``1,0``) as a bool."""
    first = value.split(",")[0].strip().upper()
    return first in ("Y", "1", "TRUE")


def check_module(sys_root: Path = loopback.SYS) -> list[Check]:
    if not sys.platform.startswith("linux"):
        return [Check("virtual camera", None, "not Linux: livebg uses the OBS virtual camera "
                      "(install OBS Studio and start its virtual camera once)")]
    if not loopback.module_loaded(sys_root):
        fixes = [MODPROBE, PERSIST]
        if shutil.which("modinfo") and subprocess.run(
                ["modinfo", "v4l2loopback"], capture_output=True).returncode != 0:
            fixes.insert(0, "install the module first: sudo apt install v4l2loopback-dkms "
                            "(Fedora: sudo dnf install akmod-v4l2loopback)")
        return [Check("v4l2loopback", False, "the v4l2loopback module is not loaded: there is "
                      "no virtual camera", fixes)]
    params = loopback.module_parameters(sys_root)
    out = [Check("v4l2loopback", True, "module loaded (" + ", ".join(
        f"{k}={params[k]}" for k in ("devices", "exclusive_caps", "card_label") if k in params)
        + ")")]
    caps = params.get("exclusive_caps")
    if caps is not None and not _yes(caps):
        out.append(Check("exclusive_caps", False, "exclusive_caps is off: Chrome, Zoom and "
                         "Teams do not list the virtual camera",
                         ["sudo modprobe -r v4l2loopback && " + MODPROBE
                          + "  (close apps using it first)", PERSIST]))
    return out


def check_devices(cfg, sys_root: Path = loopback.SYS) -> list[Check]:
    out = []
    devices = loopback.video_devices(sys_root)
    loops = [d for d in devices if d[2]]
    me = {os.getpid()}
    if loopback.module_loaded(sys_root) and not loops:
        out.append(Check("loopback device", False, "the module is loaded but no loopback "
                         "device exists", ["sudo modprobe -r v4l2loopback && " + MODPROBE]))
    for dev, name, _ in loops:
        who = loopback.holders(dev, exclude=me) if os.path.exists(dev) else []
        text = f"{dev} \"{name}\"" + (f", open by {loopback.describe_holders(who)}" if who
                                       else ", not open")
        out.append(Check("loopback device", True, text))
    want = cfg.output.device if cfg is not None else ""
    if want and "virtual" in cfg.output.sinks and loops and want not in [d[0] for d in loops]:
        out.append(Check("output.device", False, f"output.device = {want} is not a loopback "
                         f"device (those are {', '.join(d[0] for d in loops)})",
                         [f"set output.device to one of {', '.join(d[0] for d in loops)}, "
                          "or to \"\" for the first"]))
    return out


def _formats(dev: str) -> str:
    """A short list of what a camera offers: ``MJPG 1280x720@30 ...; YUYV ...``."""
    if shutil.which("v4l2-ctl"):
        try:
            r = subprocess.run(["v4l2-ctl", "-d", dev, "--list-formats-ext"],
                               capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            r = None
        if r is not None and r.returncode == 0:
            return summarize_formats(r.stdout)
    return _probe_opencv(dev)


def summarize_formats(text: str) -> str:
    """``v4l2-ctl --list-formats-ext`` output -> ``MJPG 1920x1080 1280x720@30; YUYV ...``."""
    formats: dict[str, list[str]] = {}
    current = None
    size = None
    for line in text.splitlines():
        m = re.search(r"\[\d+\]: '(\w+)'", line)
        if m:
            current = m.group(1)
            formats.setdefault(current, [])
            continue
        m = re.search(r"Size: Discrete (\d+x\d+)", line)
        if m and current:
            size = m.group(1)
            formats[current].append(size)
            continue
        m = re.search(r"\(([\d.]+) fps\)", line)
        if m and current and size and formats[current] and "@" not in formats[current][-1]:
            formats[current][-1] = f"{size}@{float(m.group(1)):g}"
    return "; ".join(f"{k} {' '.join(v[:6])}{' ...' if len(v) > 6 else ''}"
                     for k, v in formats.items()) or "no formats listed"


def _probe_opencv(dev: str) -> str:
    import cv2

    from livebg.stages.sources import _fourcc_text

    cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
    try:
        if not cap.isOpened():
            return "OpenCV cannot open it"
        ok, _ = cap.read()
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (f"{_fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))} {w}x{h}@"
                f"{cap.get(cv2.CAP_PROP_FPS):g} by default"
                + ("" if ok else ", but no frame could be read")
                + " (install v4l-utils for the full list)")
    finally:
        cap.release()


def check_cameras(cfg, sys_root: Path = loopback.SYS, probe: bool = True) -> list[Check]:
    out = []
    cams = [(d, n) for d, n, loop in loopback.video_devices(sys_root) if not loop]
    if not cams:
        out.append(Check("camera", False if cfg is None or cfg.input == "camera" else None,
                         "no camera found (/sys/class/video4linux lists none)",
                         ["plug in a webcam, or run on a file: livebg run --input FILE"]))
        return out
    for dev, name in cams:
        detail = f"{dev} \"{name}\""
        if probe and os.path.exists(dev):
            detail += ": " + _formats(dev)
        out.append(Check("camera", None, detail))
    if cfg is not None and cfg.input == "camera":
        from livebg.system.devices import device_path

        dev = device_path(cfg.camera.device)
        if not os.path.exists(dev):
            out.append(Check("camera.device", False, f"camera.device = {cfg.camera.device!r}: "
                             f"{dev} does not exist", [f"set camera.device to one of "
                                                       f"{', '.join(d for d, _ in cams)}"]))
        elif not os.access(dev, os.R_OK | os.W_OK):
            out.append(Check("camera.device", False, f"{dev}: no permission to open it",
                             ["sudo usermod -aG video $USER, then log out and in again"]))
        else:
            who = loopback.holders(dev, exclude={os.getpid()})
            if who:
                names = loopback.describe_holders(who)
                livebg = all(h.name in ("livebg", "python", "python3") for h in who)
                out.append(Check("camera.device", None if livebg else False,
                                 f"{dev} is open by {names}",
                                 [] if livebg else [f"close {names}, or choose another camera "
                                                    "with camera.device"]))
    return out


def check_providers(cfg) -> list[Check]:
    try:
        import onnxruntime as ort

        from livebg.stages.segment import ModelError, model_path, open_session, pick_model
    except ImportError as e:
        return [Check("onnxruntime", False, f"cannot import: {e}",
                      ["pip install onnxruntime (or onnxruntime-gpu on x86-64 Linux/Windows)"])]
    built = ", ".join(ort.get_available_providers())
    provider = cfg.model.provider if cfg is not None else "auto"
    try:
        path = model_path(pick_model(cfg.model.name if cfg else "auto",
                                     cfg.camera.width if cfg else 1280,
                                     cfg.camera.height if cfg else 720))
        _, running = open_session(path, provider, 1)
    except ModelError as e:
        return [Check("onnxruntime", False, str(e), ["use model.provider: auto"])]
    out = [Check("onnxruntime", True, f"onnxruntime {ort.__version__}: the net runs on "
                 f"{running}; built with {built}")]
    if running != "CUDAExecutionProvider" and "CUDAExecutionProvider" in built:
        from livebg.stages import segment

        nvidia = Path("/proc/driver/nvidia").exists() or not sys.platform.startswith("linux")
        out.append(Check("CUDA", False if nvidia and provider != "cpu" else None,
                         "the CUDA provider is built in but does not run: "
                         + (segment.cuda_problem or "CUDA/cuDNN libraries missing"),
                         [segment.CUDA_HINT] if nvidia else []))
    return out


# The shared libraries Qt 6's xcb platform plugin (PySide6, the tray) loads that a
# desktop may lack, with the package that has each: (Debian/Ubuntu, Fedora, Arch).
QT_XCB_LIBRARIES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil",
                                "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
}
INSTALLERS = (("debian", "sudo apt install"), ("fedora", "sudo dnf install"),
              ("arch", "sudo pacman -S"))


def _distribution(os_release: str) -> int | None:
    """0 Debian/Ubuntu, 1 Fedora/RHEL, 2 Arch from ``/etc/os-release`` text; None: other."""
    ids = []
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip('"').lower().split()
    for i, family in enumerate((("debian", "ubuntu"), ("fedora", "rhel", "centos"),
                                ("arch",))):
        if any(x in family for x in ids):
            return i
    return None


def _loads(soname: str) -> bool:
    import ctypes

    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def check_tray_libraries(libraries: dict | None = None, os_release: str | None = None
                         ) -> list[Check]:
    """The system libraries the tray's Qt needs on X11 (only where the tray extra is in)."""
    import importlib.util

    if not sys.platform.startswith("linux"):
        return []
    if libraries is None:
        if importlib.util.find_spec("PySide6") is None:
            return [Check("tray", None, 'the tray extra is not installed (pip install '
                          '"livebg[tray]")')]
        libraries = QT_XCB_LIBRARIES
    missing = {so: pkgs for so, pkgs in libraries.items() if not _loads(so)}
    if not missing:
        return [Check("tray", True, f"the {len(libraries)} system libraries Qt needs on X11 "
                      "are installed")]
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            os_release = ""
    distro = _distribution(os_release)
    pick = range(3) if distro is None else (distro,)
    fixes = []
    for i in pick:
        names = " ".join(dict.fromkeys(p[i] for p in missing.values()))
        fixes.append(f"{INSTALLERS[i][1]} {names}"
                     + (f"  ({INSTALLERS[i][0]})" if distro is None else ""))
    return [Check("tray", False, "livebg tray cannot open its window on X11 (Qt aborts): "
                  f"missing {', '.join(missing)}", fixes)]


def check_config(path: Path | None) -> tuple[list[Check], object]:
    from livebg import config

    target = Path(path) if path else config.user_config_path()
    if path is None and not os.path.lexists(target):  # a dangling symlink is a problem
        return [Check("configuration", True, f"{target} absent: defaults apply")], config.Config()
    try:
        cfg = config.load(target)
    except config.ConfigError as e:
        return [Check("configuration", False, str(e),
                      [f"edit {target} (every option with its default: "
                       "livebg config --print-default)"])], None
    return [Check("configuration", True, f"{target} is valid")], cfg


def check_daemon(cfg) -> list[Check]:
    from livebg.system import control

    path = control.socket_path(cfg.daemon.socket if cfg is not None else "")
    if path is None:
        return [Check("daemon", None, "control socket off (daemon.socket: off)")]
    try:
        st = control.request({"cmd": "status"}, path, timeout=2.0)
    except control.ControlError:
        return [Check("daemon", None, f"not running (no control socket at {path})")]
    return [Check("daemon", True, f"running (pid {st.get('pid')}), {st.get('state')}, "
                  f"{st.get('fps')} fps, sinks: {', '.join(st.get('sinks') or [])}")]


def run_checks(config_path: Path | None = None, *, sys_root: Path = loopback.SYS,
               probe_cameras: bool = True) -> list[Check]:
    checks, cfg = check_config(config_path)
    out = check_module(sys_root) + check_devices(cfg, sys_root)
    out += check_cameras(cfg, sys_root, probe_cameras)
    out += check_providers(cfg) + check_tray_libraries()
    out += checks + check_daemon(cfg)
    return out


def format_checks(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        mark = {True: "ok  ", False: "FAIL", None: "info"}[c.ok]
        lines.append(f"{mark} {c.topic}: {c.detail}")
        for fix in c.fixes:
            lines.append(f"     fix: {fix}")
    problems = sum(1 for c in checks if c.ok is False)
    lines.append("")
    lines.append(f"{problems} problem(s) found" if problems else "no problems found")
    return "\n".join(lines)


def main(config_path: Path | None = None, *, sys_root: Path = loopback.SYS,
         probe_cameras: bool = True) -> int:
    checks = run_checks(config_path, sys_root=sys_root, probe_cameras=probe_cameras)
    print(format_checks(checks))
    return 1 if any(c.ok is False for c in checks) else 0
