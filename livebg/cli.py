"""Command line: argument parsing only, one function per subcommand."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("livebg")

EXIT_USAGE = 2
# `livebg matte` keeps photos at their own size up to this long side (a 24 MP
# camera's 6000x4000 fits); larger ones are matted scaled down, with a warning.
MATTE_MAX_SIDE = 8192


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def _setup_logging(level: str = "info") -> None:
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger().setLevel(getattr(logging, level.upper()))


def background_overrides(spec: str) -> dict:
    """``--background`` value -> config overrides.

    ``blur`` or ``blur:0.8``, ``none``, ``transparent``, ``#rrggbb``, or the
    path of an image or video file.
    """
    from livebg.stages.media import media_kind

    if spec in ("none", "transparent", "blur"):
        return {"background.mode": spec}
    if spec.startswith("blur:"):
        return {"background.mode": "blur", "background.blur": spec[5:]}
    if spec.startswith("#"):
        return {"background.mode": "color", "background.color": spec}
    kind = media_kind(spec)
    if kind is not None:
        return {"background.mode": kind, "background.image": spec}
    raise UserError(f"--background {spec!r}: use blur, blur:STRENGTH, none, transparent, "
                    "#rrggbb, or an image or video file")


def _overrides(args) -> dict:
    """Config overrides from the common flags of run/demo/bench."""
    o: dict = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: use KEY=VALUE, e.g. --set background.blur=0.8")
        o[key.strip()] = value
    if getattr(args, "input", None):
        o["input"] = args.input
    if getattr(args, "output", None):
        o["output.sinks"] = list(args.output)
    if getattr(args, "background", None):
        o.update(background_overrides(args.background))
    if getattr(args, "model", None):
        o["model.name"] = args.model
    if getattr(args, "refine", None):
        o["refine.mode"] = args.refine
    if getattr(args, "temporal", None):
        o["temporal.mode"] = {"on": "motion"}.get(args.temporal, args.temporal)
    if getattr(args, "threads", None) is not None:
        o["model.threads"] = args.threads
    if getattr(args, "subject", None):
        o["subject"] = args.subject
    if getattr(args, "overwrite", False):
        o["output.overwrite"] = True
    return o


def load_config(args):
    from livebg import config

    return config.load(Path(args.config) if getattr(args, "config", None) else None,
                       _overrides(args))


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: must be 1 or more")
    return n


def _add_common(p: argparse.ArgumentParser, *, io: bool = True, frames: bool = True,
                overwrite: bool = True) -> None:
    """The common options; ``frames``: those that act on a stream of frames (background,
    temporal); ``overwrite``: the command writes files."""
    p.add_argument("--config", metavar="PATH", help="configuration file "
                   "(default: $XDG_CONFIG_HOME/livebg/config.yaml when it exists)")
    if io:
        p.add_argument("--input", "-i", metavar="SPEC",
                       help="camera, camera:N, /dev/videoN, sample, or a video/image file")
        p.add_argument("--output", "-o", metavar="SPEC", action="append",
                       help="virtual, overlay, window, null, FILE.mp4 (.avi .mkv .mov), or "
                       "DIR/ (a folder for PNG frames: trailing /; its parent folder must "
                       "exist); repeat for several")
    if frames:
        p.add_argument("--background", "-b", metavar="SPEC",
                       help="blur, blur:0.8, none, transparent, #rrggbb, or an image/video file")
    p.add_argument("--model", "-m", choices=("auto", "landscape", "square", "livebg"))
    p.add_argument("--refine", metavar="MODE", help="matte refinement (see `refine.mode`)")
    if frames:
        p.add_argument("--temporal", choices=("on", "off", "motion"),
                       help="temporal stage on (motion) or off (see `temporal.mode`)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="net threads on the CPU, 1 to 64 (see `model.threads`)")
    p.add_argument("--subject", choices=("all", "main"),
                   help="keep everyone, or the main person only (see `subject`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any configuration key, e.g. background.blur=0.8")
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help="allow replacing existing files")


def cmd_run(args) -> int:
    """The daemon: camera (or --input) through the pipeline to the virtual camera (or --output).

    SIGTERM and SIGINT stop it cleanly; SIGHUP reloads the configuration.
    """
    import signal
    import threading

    from livebg.engine.daemon import Daemon

    stop = threading.Event()
    holder: dict = {}

    def on_stop(signum, _frame):
        stop.set()
        if "daemon" in holder:
            holder["daemon"].stop()

    def on_hup(signum, _frame):
        if "daemon" in holder:
            holder["daemon"].request_reload()

    # Handlers first: a stop during start-up (model loading) must be clean too.
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hup)
    overrides = _overrides(args)
    config_path = Path(args.config) if getattr(args, "config", None) else None
    cfg = load_config(args)
    _setup_logging(cfg.log.level)
    _warn_alpha_lost(cfg)
    daemon = Daemon(cfg, config_path=config_path, overrides=overrides,
                    realtime=True if args.realtime else None, max_frames=args.frames)
    holder["daemon"] = daemon
    if stop.is_set():
        return 0
    return daemon.run()


def _warn_alpha_lost(cfg) -> None:
    """``background.mode: transparent`` into a video file: say the alpha becomes black."""
    from livebg.sinks.files import VIDEO_SUFFIXES

    if cfg.background.mode != "transparent":
        return
    for spec in cfg.output.sinks:
        if Path(spec).suffix.lower() in VIDEO_SUFFIXES:
            log.warning("%s keeps no transparency: the background becomes black there; for "
                        "alpha write a PNG folder (--output DIR/) or a .webm/.mov with "
                        "`livebg process`", spec)


def cmd_ctl(args) -> int:
    """Talk to the running daemon through its control socket."""
    import base64
    import json

    from livebg.system import control, safepaths

    path = Path(args.socket) if args.socket else None
    if path is None:
        from livebg import config

        try:
            cfg = config.load(Path(args.config) if args.config else None)
            path = control.socket_path(cfg.daemon.socket)
        except config.ConfigError:
            path = None
        if path is None:
            path = control.default_path()
    req: dict = {"cmd": args.action}
    if args.action in ("get", "set"):
        if not args.args and args.action == "set":
            raise UserError("usage: livebg ctl set KEY VALUE")
        if args.args:
            req["key"] = args.args[0]
        if args.action == "set":
            if len(args.args) != 2:
                raise UserError("usage: livebg ctl set KEY VALUE, e.g. "
                                "livebg ctl set background.blur 0.8")
            req["value"] = args.args[1]
    elif args.action == "snapshot":
        if len(args.args) != 1:
            raise UserError("usage: livebg ctl snapshot FILE.png|FILE.jpg [--overwrite]")
        out = Path(args.args[0])
        try:  # before asking the daemon: a name we would refuse costs nothing
            req["format"] = control.snapshot_format(out)
            safepaths.check_new_file(out, overwrite=args.overwrite)
        except safepaths.UnsafePath as e:
            raise UserError(str(e)) from None
    elif args.args:
        raise UserError(f"livebg ctl {args.action} takes no arguments")
    try:
        reply = control.request(req, path)
    except control.ControlError as e:
        raise UserError(str(e)) from None
    if args.action == "snapshot" and reply.get("ok"):
        try:
            safepaths.write_new_file(out, base64.b64decode(reply.pop("data")),
                                     overwrite=args.overwrite)
        except safepaths.UnsafePath as e:
            raise UserError(str(e)) from None
        reply["path"] = str(out)
    # Whatever the daemon refuses is a usage error like ours: one line, exit status 2.
    if args.json:
        print(json.dumps(reply, indent=2))
    elif not reply.get("ok"):
        raise UserError(str(reply.get("error") or f"{args.action} failed"))
    else:
        print(_format_reply(args.action, reply))
    return 0 if reply.get("ok") else EXIT_USAGE


def _format_reply(action: str, r: dict) -> str:
    import json

    if action == "status":
        lines = [f"state:    {r['state']}" + (f" (paused by {r['paused_by']})"
                                               if r.get("paused_by") else ""),
                 f"fps:      {r['fps']:.1f}  ({r['frames']} frames, {r['dropped']} dropped)"]
        lat = r.get("latency_ms")
        if lat:
            lines.append(f"latency:  {lat['p50']:.1f} ms p50, {lat['p95']:.1f} ms p95 "
                         "(capture to output)")
        stages = r.get("stages_ms") or {}
        if stages:
            lines.append("stages:   " + " | ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}"
                                                   for k, v in stages.items()) + " (ms p50/p95)")
        cam = r.get("camera") or {}
        lines.append(f"input:    {cam.get('describe') or r['input']}"
                     + (f"  [{cam['problem']}]" if cam.get("problem") else ""))
        lines.append(f"output:   {r['output']['width']}x{r['output']['height']}@"
                     f"{r['output']['fps']:g} -> {', '.join(r['sinks'])}")
        if r.get("consumers") is not None:
            lines.append(f"viewers:  {', '.join(r['consumers']) or 'none'}"
                         + ("" if r.get("on_demand") else " (on-demand off)"))
        lines.append(f"model:    {r['model']} on {r['provider']}, refine {r['refine']}, "
                     f"background {r['background']}")
        lines.append(f"config:   {r['config']}")
        return "\n".join(lines)
    if action == "get":
        v = r["value"]
        return v if isinstance(v, str) else json.dumps(v, indent=2)
    if action == "set":
        return (f"{r['key']} = {json.dumps(r['value'])} (in memory only; edit the file to keep "
                "it)" + "".join(f"; {n}" for n in r.get("notes", [])))
    if action in ("pause", "resume"):
        return f"state: {r.get('state', 'paused' if r.get('paused') else 'running')}"
    if action == "reload":
        return ("configuration reloaded: " + (", ".join(r["changed"]) or "nothing")
                + " changed" + "".join(f"; {n}" for n in r.get("notes", [])))
    if action == "snapshot":
        return f"{r['path']} ({r['width']}x{r['height']})"
    return json.dumps(r)


def cmd_doctor(args) -> int:
    from livebg.system import doctor

    _setup_logging("warning")
    return doctor.main(Path(args.config) if args.config else None,
                       probe_cameras=not args.no_probe)


def _free_name(path: Path) -> Path:
    """``path`` if free, else ``stem-1.ext``, ``stem-2.ext``, ... (never overwrite)."""
    n = 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def make_out_folder(folder: Path, flag: str) -> Path:
    """Create ``folder`` (only its last level: a typo in a parent is an error) and check that
    files can be written in it; UserError saying which folder and why otherwise."""
    from livebg.sinks.base import SinkError
    from livebg.sinks.files import writable_folder

    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise UserError(f"{flag} {folder}: not a folder (give a folder; a file of that name exists)")
    try:
        if not folder.is_dir():
            writable_folder(folder.parent if str(folder.parent) else Path("."), f"{flag} {folder}")
            folder.mkdir()
        writable_folder(folder, f"{flag} {folder}")
    except SinkError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"{flag} {folder}: cannot create the folder ({e.strerror})") from None
    return folder


# The modules whose numba kernels every run compiles (cache=True) before its first frame.
KERNEL_MODULES = ("livebg.stages.compose.kernels", "livebg.stages.subject",
                  "livebg.stages.temporal", "livebg.stages.refine.superpixels",
                  "livebg.stages.refine.solve")


def _kernels_compiled() -> bool:
    """True when numba's cache holds every run's kernels (a later run starts at once)."""
    import importlib.util

    for name in KERNEL_MODULES:
        spec = importlib.util.find_spec(name)
        if not (spec and spec.origin):
            return False
        origin = Path(spec.origin)
        if not any((origin.parent / "__pycache__").glob(f"{origin.stem}.*.nbi")):
            return False
    return True


class _Grab:
    """A sink that keeps frame number ``index`` of a batch run (the demo's still).

    With ``wants_alpha`` the engine hands it the BGRA cut-out, whose alpha is the matte.
    """

    def __init__(self, width: int, height: int, index: int, alpha: bool):
        self.size = (width, height)
        self.index = index
        self.wants_alpha = alpha
        self.count = 0
        self.image = None

    def write(self, image) -> None:
        if self.count == self.index:
            self.image = image.copy()
        self.count += 1

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "still"


def _progress(daemon, total: int, first_run: bool):
    """A thread drawing a progress bar of ``daemon``'s frames on stderr; returns (thread, stop)."""
    import threading

    from tqdm import tqdm

    done = threading.Event()

    def run():
        with tqdm(total=total, unit="frame", leave=False, file=sys.stderr,
                  desc="compiling kernels" if first_run else "starting") as bar:
            while not done.wait(0.25):
                n = daemon.stats.frames
                if n and bar.n == 0:
                    bar.set_description("processing")
                bar.update(n - bar.n)

    t = threading.Thread(target=run, name="livebg-progress", daemon=True)
    t.start()
    return t, done


def cmd_demo(args) -> int:
    """The built-in sample through the daemon (as a batch) into a video and a side-by-side PNG."""
    import cv2
    import numpy as np

    from livebg.config import set_value
    from livebg.engine.daemon import Daemon
    from livebg.sinks.files import VideoFileSink, write_file
    from livebg.stages.sources import SampleSource

    cfg = set_value(load_config(args), "input", "sample")
    _setup_logging(cfg.log.level)
    out_dir = make_out_folder(Path(args.out), "--out")
    video = _free_name(out_dir / "livebg-demo.mp4")
    still = _free_name(out_dir / "livebg-demo.png")
    source = SampleSource(width=args.width, height=args.height, fps=30, count=args.frames)
    # The still is a frame of the clip itself, in the middle (warm temporal state,
    # as every other frame of the video), not a frame processed afresh.
    grabs: list[_Grab] = []

    def sinks(_cfg, w, h, fps):
        grabs[:] = [_Grab(w, h, args.frames // 2, False), _Grab(w, h, args.frames // 2, True)]
        return [VideoFileSink(video, w, h, fps), *grabs]

    daemon = Daemon(cfg, realtime=False, control=False, watch_config=False,
                    source_factory=lambda _cfg, _live: source, sink_factory=sinks)
    first_run = not _kernels_compiled()
    print(f"livebg demo: {args.frames} frames at {args.width}x{args.height}"
          + ("; preparing the compiled kernels once first (about 30 s; later runs skip this)"
             if first_run else ""), file=sys.stderr)
    t0 = time.perf_counter()
    bar, done = _progress(daemon, args.frames, first_run)
    try:
        daemon.run()
    finally:
        done.set()
        bar.join(2)
    wall = time.perf_counter() - t0
    image = source.render(args.frames // 2)
    output, cutout = grabs[0].image, grabs[1].image
    matte = cv2.cvtColor(cutout[..., 3], cv2.COLOR_GRAY2BGR)
    from livebg.sinks.base import to_bgr

    panel = np.hstack([image, matte, to_bgr(output)])
    panel = cv2.resize(panel, (panel.shape[1] // 2, panel.shape[0] // 2),
                       interpolation=cv2.INTER_AREA)
    write_file(still, cv2.imencode(".png", panel)[1].tobytes())
    frames = daemon.stats.frames
    print(f"video: {video} ({frames} frames, {source.width}x{source.height})")
    print(f"still: {still} (input | matte | output, frame {args.frames // 2} of the clip)")
    print(f"speed: {frames / wall:.1f} frames/s for the whole clip ({frames} frames in "
          f"{wall:.1f} s, start-up included); {daemon.stats.fps():.1f} frames/s once running")
    return 0


def _list_images(inputs: list[str]) -> list[Path]:
    from livebg.stages.media import IMAGE_EXTENSIONS, media_kind

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if media_kind(f) == "image")
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: no such image or folder")
    if not files:
        raise UserError(f"no images found in {', '.join(inputs)} "
                        f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    stems = [f.stem for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise UserError(f"several inputs share the name {dup[0]!r}: their mattes would collide; "
                        "run them separately")
    return files


def _matte_targets(files: list[Path], out: Path, cutout: bool,
                   overwrite: bool) -> list[tuple[Path, ...]]:
    """(input, matte path[, cut-out path]) per file, every name checked before anything is
    written: no two outputs share a name, none is an input (not even with --overwrite), and
    none exists (a dangling symlink counts) unless ``overwrite``."""
    plan = [(f, out / f"{f.stem}.png") + ((out / f"{f.stem}_cutout.png",) if cutout else ())
            for f in files]
    seen: dict[Path, Path] = {}
    inputs = {Path(os.path.realpath(f)): f for f in files}
    for f, *targets in plan:
        for t in targets:
            if t in seen:
                raise UserError(f"{seen[t]} and {f} would both write {t}: rename one, "
                                "or run them separately")
            seen[t] = f
            real = Path(os.path.realpath(t))
            if real in inputs:
                raise UserError(f"{t} is the input {inputs[real]}: the matte would replace it; "
                                "choose another --out folder")
    taken = [t for t in seen if os.path.lexists(t)]
    if taken and not overwrite:
        what = "is a symlink" if os.path.islink(taken[0]) else "exists"
        raise UserError(f"{taken[0]} {what} ({len(taken)} file(s) would be replaced): "
                        "use another --out folder or pass --overwrite")
    return plan


def cmd_matte(args) -> int:
    """One 8-bit alpha PNG per image, same stem and size; --cutout adds RGBA PNGs.

    A file that cannot be read is skipped with one line and the others are done;
    the exit status is then 1.
    """
    import cv2
    import numpy as np

    from livebg.factory import make_compositor, make_refiner, make_segmenter
    from livebg.processor import Processor
    from livebg.sinks.base import SinkError
    from livebg.sinks.files import write_file
    from livebg.stages.segment import pick_model
    from livebg.stages.sources import SourceError, read_image

    cfg = load_config(args)
    _setup_logging(cfg.log.level)
    files = _list_images(args.inputs)
    out = Path(args.out)
    if os.path.lexists(out) and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: give a folder for the mattes")
    plan = _matte_targets(files, out, args.cutout, cfg.output.overwrite)
    make_out_folder(out, "--out")
    processors: dict[str, Processor] = {}  # one per net (the net depends on the photo's shape)
    refiner, compositor = make_refiner(cfg), make_compositor(cfg)
    skipped = 0
    t0 = time.perf_counter()
    for f, matte_path, *cutout_path in plan:
        try:
            image = read_image(f, max_side=MATTE_MAX_SIDE)
        except SourceError as e:
            print(f"livebg: skipped: {e}", file=sys.stderr)
            skipped += 1
            continue
        h, w = image.shape[:2]
        name = pick_model(cfg.model.name, w, h)
        if name not in processors:
            processors[name] = Processor(make_segmenter(cfg, w, h), refiner, compositor)
        processor = processors[name]
        processor.reset()  # photos are independent: no state from the previous one
        alpha = processor.alpha(image)
        a8 = (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8)
        try:
            write_file(matte_path, cv2.imencode(".png", a8)[1].tobytes(),
                       overwrite=cfg.output.overwrite)
            if cutout_path:
                write_file(cutout_path[0], cv2.imencode(".png", np.dstack([image, a8]))[1]
                           .tobytes(), overwrite=cfg.output.overwrite)
        except SinkError as e:
            raise UserError(str(e)) from None
    done = len(files) - skipped
    dt = time.perf_counter() - t0
    print(f"{done} matte(s) written to {out}"
          + (f" ({dt / done * 1e3:.0f} ms each)" if done else "")
          + (f"; {skipped} file(s) skipped" if skipped else ""))
    return 1 if skipped else 0


def cmd_bench(args) -> int:
    from livebg.eval import bench

    cfg = load_config(args)
    _setup_logging("warning")
    return bench.main(cfg, frames=args.frames, as_json=args.json, width=args.width,
                      height=args.height, paced=args.paced, soak_seconds=args.soak)


def default_eval_out(data: str) -> Path:
    """``livebg-eval/NAME``: one folder per data set, so evals of different sets in a row
    never collide (a second eval of the same set still needs ``--overwrite``)."""
    name = "sample" if data == "sample" else (Path(data).resolve().name or "data")
    return Path("livebg-eval") / name


def cmd_eval(args) -> int:
    """Score the pipeline on photos or clips with ground truth: table, JSON, PNG report."""
    from livebg.eval import evaluate

    cfg = load_config(args)
    _setup_logging("warning")
    overwrite = cfg.output.overwrite
    out = Path(args.out) if args.out else default_eval_out(args.data)
    if not args.out:
        out.parent.mkdir(exist_ok=True)  # ./livebg-eval, ours to make
    taken = [t for t in (out / "eval.json", out / "eval.png") if os.path.lexists(t)]
    if taken and not overwrite:
        raise UserError(f"{taken[0]} exists: use another --out folder or pass --overwrite")
    if args.save_alpha and not overwrite and Path(args.save_alpha).is_dir() and any(
            Path(args.save_alpha).rglob("*.png")):
        raise UserError(f"--save-alpha {args.save_alpha} already holds PNG files: choose an "
                        "empty folder or pass --overwrite")
    make_out_folder(out, "--out")
    from livebg.sinks.base import SinkError

    try:
        return evaluate.main(cfg, args.data, out=out, limit=args.limit,
                             save_alpha=args.save_alpha, progress=not args.quiet,
                             overwrite=overwrite)
    except evaluate.DatasetError as e:
        raise UserError(str(e)) from None
    except SinkError as e:
        raise UserError(str(e)) from None


def cmd_clips(args) -> int:
    """Generate test clips with exact ground truth from a folder of photos and masks."""
    from livebg.eval import clips

    _setup_logging("warning")
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {args.size!r}: use WIDTHxHEIGHT, e.g. 640x360") from None
    from tqdm import tqdm

    out = Path(args.out)
    old = sorted(d.name for d in out.glob("*/meta.json")) if out.is_dir() else []
    if old and not args.overwrite:
        raise UserError(f"{out} already holds {len(old)} clip(s) ({old[0]}, ...): choose an "
                        "empty folder or pass --overwrite")
    make_out_folder(out, "OUT")
    try:
        if args.crowd:
            from livebg.eval.crowd import generate_crowd_clips

            made = generate_crowd_clips(args.data, n_clips=args.n, size=(w, h), seed=args.seed,
                                        backgrounds=args.backgrounds, jpeg_quality=args.jpeg,
                                        n_frames=2 * args.still + args.move)
        else:
            made = clips.generate_clips(args.data, n_clips=args.n, size=(w, h), seed=args.seed,
                                        backgrounds=args.backgrounds, jpeg_quality=args.jpeg,
                                        n_still=args.still, n_move=args.move,
                                        n_still_end=args.still)
        dirs = []
        for c in tqdm(made, total=args.n, unit="clip", leave=False):
            if os.path.lexists(out / c.name) and not args.overwrite:
                raise UserError(f"{out / c.name} exists: choose an empty folder or pass "
                                "--overwrite")
            dirs.append(clips.write_clip(c, out / c.name))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"{out}: cannot write the clips ({e.strerror or e})") from None
    print(f"{len(dirs)} clip(s) of {2 * args.still + args.move} frames at {w}x{h} written "
          f"to {args.out}; score them with `livebg eval {args.out}`")
    return 0


def cmd_process(args) -> int:
    """Recorded video through the pipeline: every frame, audio and timestamps kept."""
    from livebg.offline import cli as offline_cli

    cfg = load_config(args)
    _setup_logging("warning" if cfg.log.level == "info" else cfg.log.level)
    return offline_cli.main(cfg, args)


def cmd_tray(args) -> int:
    """The tray icon and settings window (optional extra ``livebg[tray]``)."""
    from livebg import tray

    if tray.missing():
        print(f"livebg tray needs Qt: {tray.INSTALL_HINT}", file=sys.stderr)
        return EXIT_USAGE
    return tray.main(start_daemon=not args.no_start)


def cmd_autostart(args) -> int:
    """``livebg autostart on|off|status``: the systemd user unit, else an XDG autostart entry."""
    from livebg.system import autostart

    if args.action == "status":
        print(autostart.describe())
        return 0
    try:
        print(autostart.set_enabled(args.action == "on"))
    except autostart.AutostartError as e:
        raise UserError(str(e)) from None
    print(autostart.describe())
    return 0


def cmd_config(args) -> int:
    """``livebg config``: where the configuration is; ``--print-default``: every option."""
    from livebg import config
    from livebg.system import shipped

    if args.print_default:
        sys.stdout.write(shipped.text("default.yaml"))
        return 0
    if args.shipped:
        print(shipped.path(args.shipped))
        return 0
    path = config.user_config_path()
    print(f"{path} ({'exists' if path.is_file() else 'absent: defaults apply'}); every option "
          "with its default: livebg config --print-default")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from livebg import __version__

    parser = argparse.ArgumentParser(prog="livebg", description="Live webcam background "
                                     "replacement to a virtual camera.")
    parser.add_argument("--version", action="version", version=f"livebg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    _add_daemon_commands(sub)
    _add_batch_commands(sub)
    _add_desktop_commands(sub)
    _add_process_command(sub)
    return parser


def _add_daemon_commands(sub) -> None:
    """run, ctl, doctor: the daemon and what talks to it."""
    p = sub.add_parser("run", help="camera to virtual camera (the daemon)")
    _add_common(p)
    p.add_argument("--frames", type=positive_int, metavar="N",
                   help="stop after N frames (default: at the end of a file input, never for "
                   "a camera)")
    p.add_argument("--realtime", action="store_true",
                   help="treat a file input like a camera: paced to its frame rate, looped, "
                   "newest frame wins (automatic for cameras and virtual, window or overlay "
                   "outputs)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ctl", help="control the running daemon (status, get, set, pause, ...)")
    p.add_argument("action", choices=("status", "get", "set", "pause", "resume", "snapshot",
                                      "reload"))
    p.add_argument("args", nargs="*", metavar="ARG",
                   help="get KEY | set KEY VALUE | snapshot FILE.png (or .jpg)")
    p.add_argument("--json", action="store_true", help="print the daemon's raw JSON reply")
    p.add_argument("--overwrite", action="store_true",
                   help="snapshot: replace FILE if it exists (never a link, FIFO or folder)")
    p.add_argument("--socket", metavar="PATH", help="control socket (default: daemon.socket, "
                   "else $XDG_RUNTIME_DIR/livebg/control.sock)")
    p.add_argument("--config", metavar="PATH", help="configuration file to read daemon.socket from")
    p.set_defaults(func=cmd_ctl)

    p = sub.add_parser("doctor", help="check v4l2loopback, cameras, ONNX Runtime, configuration")
    p.add_argument("--config", metavar="PATH", help="configuration file to check")
    p.add_argument("--no-probe", action="store_true", help="do not open cameras to list formats")
    p.set_defaults(func=cmd_doctor)



def _add_process_command(sub) -> None:
    p = sub.add_parser("process", help="recorded video through the pipeline: every frame, "
                       "audio and timestamps kept (.mp4, .webm, .mov, PNG folder)")
    _add_common(p, io=False)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="IN OUT, or IN... with --out DIR")
    p.add_argument("--out", metavar="DIR", help="folder for several outputs (NAME.FORMAT each)")
    p.add_argument("--format", choices=("mp4", "webm", "mov", "png"), default="mp4",
                   help="output kind with --out (default mp4; png: a folder of frames)")
    p.add_argument("--matte-only", action="store_true",
                   help="write the alpha as a grey video instead of the composite")
    p.add_argument("--jobs", type=int, default=2, metavar="N",
                   help="files processed at once with --out (default 2, one per core)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_process)


def _add_batch_commands(sub) -> None:
    """demo, matte, bench, eval, clips (one-off jobs on files) and the tray."""
    p = sub.add_parser("demo", help="the built-in sample to a video file and a side-by-side PNG")
    _add_common(p, io=False)
    p.add_argument("--out", default="livebg-demo", metavar="DIR",
                   help="folder for the results (default: ./livebg-demo)")
    p.add_argument("--frames", type=positive_int, default=120, metavar="N",
                   help="length of the clip in frames (default 120: 4 s at 30 frames/s)")
    p.add_argument("--width", type=positive_int, default=1280, metavar="PIXELS",
                   help="frame width (default 1280)")
    p.add_argument("--height", type=positive_int, default=720, metavar="PIXELS",
                   help="frame height (default 720)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("matte", help="alpha PNGs for photos (batch cut-outs)")
    _add_common(p, io=False, frames=False)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the alpha PNGs (created if its parent exists); never one "
                   "of the inputs")
    p.add_argument("--cutout", action="store_true", help="also write STEM_cutout.png (RGBA)")
    p.set_defaults(func=cmd_matte)

    p = sub.add_parser("bench", help="per-stage milliseconds and throughput at 1280x720")
    _add_common(p, io=False, overwrite=False)
    p.add_argument("--frames", type=positive_int, default=300, metavar="N",
                   help="frames to time (default 300)")
    p.add_argument("--width", type=positive_int, default=1280, metavar="PIXELS",
                   help="frame width (default 1280)")
    p.add_argument("--height", type=positive_int, default=720, metavar="PIXELS",
                   help="frame height (default 720)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--paced", type=float, default=10.0, metavar="SECONDS",
                   help="also run the daemon paced at 30 frames/s like a camera for this long "
                   "and report latency and CPU (0: skip; default 10)")
    p.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                   help="only a long paced run: memory and thread growth (e.g. 600)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", help="score mattes against ground truth (photos or clips): "
                       "table, JSON and PNG report")
    _add_common(p, io=False)
    p.add_argument("data", metavar="DATA", help="folder with images/ + masks/, or of clips "
                   "(CLIP/frames/ + CLIP/masks/, see `livebg clips`), or `sample` (the "
                   "built-in sample against its true alpha)")
    p.add_argument("--out", metavar="DIR", help="folder for eval.json and eval.png "
                   "(default: ./livebg-eval/NAME, NAME the data folder's name or `sample`)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N photos or clips")
    p.add_argument("--save-alpha", metavar="DIR",
                   help="write every predicted alpha as an 8-bit PNG (DIR/CLIP/NAME.png for clips)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("clips", help="make test clips with exact ground truth from photos + masks")
    p.add_argument("data", metavar="DATA", help="folder with images/ + masks/ (255 = person)")
    p.add_argument("out", metavar="OUT", help="folder for the clips (one sub-folder each)")
    p.add_argument("--n", type=int, default=8, metavar="N", help="number of clips (default 8)")
    p.add_argument("--size", default="640x360", metavar="WxH", help="frame size (default 640x360)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jpeg", type=int, metavar="Q", help="JPEG round trip at quality Q "
                   "(like an MJPEG webcam); default: none")
    p.add_argument("--still", type=int, default=20, metavar="N",
                   help="frames standing still before and after the motion (default 20)")
    p.add_argument("--move", type=int, default=30, metavar="N",
                   help="frames of motion (default 30)")
    p.add_argument("--backgrounds", metavar="PATH",
                   help="background image or folder (default: the package's scenes)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing clips that exist in OUT")
    p.add_argument("--crowd", action="store_true",
                   help="a second person behind or beside the main one (cases behind_still, "
                   "behind_walk, beside, cross in turn), with truths masks/ (main person) and "
                   "masks_all/ (everyone), for `subject`")
    p.set_defaults(func=cmd_clips)


def _add_desktop_commands(sub) -> None:
    """autostart, config, tray: the commands about livebg's place on the desktop."""
    p = sub.add_parser("autostart", help="start livebg at login: on, off, or status "
                       "(systemd user unit, else XDG autostart)")
    p.add_argument("action", choices=("on", "off", "status"))
    p.set_defaults(func=cmd_autostart)

    p = sub.add_parser("config", help="where the configuration file is; --print-default")
    p.add_argument("--print-default", action="store_true",
                   help="print every option with its default and a comment (default.yaml)")
    p.add_argument("--shipped", metavar="NAME", choices=("default.yaml", "livebg.service",
                                                         "livebg.desktop", "icon.svg"),
                   help="print where a file livebg ships is: default.yaml, livebg.service, "
                   "livebg.desktop, icon.svg")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("tray", help="tray icon and settings window (needs livebg[tray])")
    p.add_argument("--no-start", action="store_true",
                   help="do not start the daemon when it is not running")
    p.set_defaults(func=cmd_tray)



def _quiet_pipe() -> int:
    """``livebg eval | head``: the reader has gone. No traceback, and no second error when
    Python flushes stdout at exit; status 1, as the output is incomplete."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def _leave_quickly(rc: int) -> None:
    """After ``livebg run`` (the real command, not a test's call): exit fast and cleanly.

    The daemon has released everything (camera, sinks, socket). Exiting would then
    run the cyclic collector over numba's and ONNX Runtime's objects: 2.3-5.4 s
    measured on 2 busy cores, 0.3 s with them frozen (not collected). A stage thread
    that did not stop in time (a slow frame on a machine under load 12) would be
    torn down by the interpreter's finalisation while it runs native code, which
    ended one run in a segfault (exit -11): then leave at once, with ``rc``.
    """
    import gc
    import threading

    gc.freeze()
    lingering = [t.name for t in threading.enumerate()
                 if t.name.startswith("livebg-") and t.is_alive()]
    if lingering:
        log.warning("leaving with %s still running", ", ".join(lingering))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    from livebg.config import ConfigError
    from livebg.system.control import AlreadyRunning
    from livebg.system.safepaths import UnsafePath
    from livebg.stages.segment import ModelError
    from livebg.sinks.base import SinkError
    from livebg.stages.compose.backgrounds import BackgroundError
    from livebg.stages.sources import SourceError
    from livebg.offline.decode import OfflineError

    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:
            # `ctl snapshot --overwrite FILE`: argparse stops filling ARG... at a flag.
            if getattr(args, "func", None) is cmd_ctl and not any(
                    e.startswith("-") for e in extra):
                args.args += extra
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except BrokenPipeError:  # `livebg run --help | head`
        return _quiet_pipe()
    try:
        rc = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        if argv is None and args.func is cmd_run:
            _leave_quickly(rc)
        return rc
    except (UserError, ConfigError, SourceError, SinkError, ModelError, AlreadyRunning,
            UnsafePath, BackgroundError, OfflineError) as e:
        print(f"livebg: error: {' '.join(str(e).split())}", file=sys.stderr)
        if argv is None and args.func is cmd_run:
            _leave_quickly(EXIT_USAGE)
        return EXIT_USAGE
    except BrokenPipeError:
        return _quiet_pipe()
    except KeyboardInterrupt:
        return 130
