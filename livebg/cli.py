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
    from livebg.stages.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    if spec in ("none", "transparent", "blur"):
        return {"background.mode": spec}
    if spec.startswith("blur:"):
        return {"background.mode": "blur", "background.blur": spec[5:]}
    if spec.startswith("#"):
        return {"background.mode": "color", "background.color": spec}
    suffix = Path(spec).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return {"background.mode": "image", "background.image": spec}
    if suffix in VIDEO_EXTENSIONS:
        return {"background.mode": "video", "background.image": spec}
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
    if getattr(args, "threads", None):
        o["model.threads"] = args.threads
    if getattr(args, "overwrite", False):
        o["output.overwrite"] = True
    return o


def load_config(args):
    from livebg import config

    return config.load(Path(args.config) if getattr(args, "config", None) else None,
                       _overrides(args))


def _add_common(p: argparse.ArgumentParser, *, io: bool = True) -> None:
    p.add_argument("--config", metavar="PATH", help="configuration file "
                   "(default: $XDG_CONFIG_HOME/livebg/config.yaml when it exists)")
    if io:
        p.add_argument("--input", "-i", metavar="SPEC",
                       help="camera, camera:N, /dev/videoN, sample, or a video/image file")
        p.add_argument("--output", "-o", metavar="SPEC", action="append",
                       help="virtual, window, null, FILE.mp4, or a folder for PNG frames; "
                       "repeat for several")
    p.add_argument("--background", "-b", metavar="SPEC",
                   help="blur, blur:0.8, none, transparent, #rrggbb, or an image/video file")
    p.add_argument("--model", "-m", choices=("auto", "landscape", "square"))
    p.add_argument("--refine", metavar="MODE", help="matte refinement (see `refine.mode`)")
    p.add_argument("--temporal", choices=("on", "off", "motion"),
                   help="temporal stage on (motion) or off (see `temporal.mode`)")
    p.add_argument("--threads", type=int, metavar="N", help="net threads on the CPU")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any configuration key, e.g. background.blur=0.8")
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
    daemon = Daemon(cfg, config_path=config_path, overrides=overrides,
                    realtime=True if args.realtime else None, max_frames=args.frames)
    holder["daemon"] = daemon
    if stop.is_set():
        return 0
    return daemon.run()


def cmd_ctl(args) -> int:
    """Talk to the running daemon through its control socket."""
    import base64
    import json

    from livebg.system import control

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
            raise UserError("usage: livebg ctl snapshot FILE.png")
    elif args.args:
        raise UserError(f"livebg ctl {args.action} takes no arguments")
    try:
        reply = control.request(req, path)
    except control.ControlError as e:
        raise UserError(str(e)) from None
    if args.action == "snapshot" and reply.get("ok"):
        out = Path(args.args[0])
        try:
            out.write_bytes(base64.b64decode(reply.pop("data")))
        except OSError as e:
            raise UserError(f"{out}: cannot write ({e.strerror})") from None
        reply["path"] = str(out)
    if args.json:
        print(json.dumps(reply, indent=2))
    elif not reply.get("ok"):
        print(f"livebg: error: {reply.get('error')}", file=sys.stderr)
    else:
        print(_format_reply(args.action, reply))
    return 0 if reply.get("ok") else 1


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
        return f"{r['key']} = {json.dumps(r['value'])} (in memory only; edit the file to keep it)"
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


def cmd_demo(args) -> int:
    """The built-in sample through the daemon (as a batch) into a video and a side-by-side PNG."""
    import cv2
    import numpy as np

    from livebg.config import set_value
    from livebg.engine.daemon import Daemon
    from livebg.sinks.base import to_bgr
    from livebg.sinks.files import VideoFileSink
    from livebg.stages.sources import SampleSource

    cfg = set_value(load_config(args), "input", "sample")
    _setup_logging(cfg.log.level)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = _free_name(out_dir / "livebg-demo.mp4")
    still = _free_name(out_dir / "livebg-demo.png")
    source = SampleSource(width=args.width, height=args.height, fps=30, count=args.frames)
    daemon = Daemon(cfg, realtime=False, control=False, watch_config=False,
                    source_factory=lambda _cfg, _live: source,
                    sink_factory=lambda _cfg, w, h, fps: [VideoFileSink(video, w, h, fps)])
    daemon.run()
    # The side-by-side still: input | matte | output, at the middle of the clip.
    processor = daemon.processor
    processor.reset()
    image = source.render(args.frames // 2)
    alpha = processor.alpha(image)
    output = processor.compose(image, alpha)

    matte = cv2.cvtColor((alpha * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    panel = np.hstack([image, matte, to_bgr(output)])
    panel = cv2.resize(panel, (panel.shape[1] // 2, panel.shape[0] // 2),
                       interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(still), panel)
    print(f"video: {video} ({daemon.stats.frames} frames, {source.width}x{source.height})")
    print(f"still: {still} (input | matte | output)")
    print(f"speed: {daemon.stats.fps():.1f} frames/s end to end on this machine")
    return 0


def _list_images(inputs: list[str]) -> list[Path]:
    from livebg.stages.sources import IMAGE_EXTENSIONS

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
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


def cmd_matte(args) -> int:
    """One 8-bit alpha PNG per image, same stem and size; --cutout adds RGBA PNGs."""
    import cv2
    import numpy as np

    from livebg.factory import make_refiner, make_segmenter
    from livebg.stages.sources import read_image

    cfg = load_config(args)
    _setup_logging(cfg.log.level)
    files = _list_images(args.inputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / f"{f.stem}.png" for f in files]
    if args.cutout:
        targets += [out / f"{f.stem}_cutout.png" for f in files]
    taken = [t for t in targets if t.exists()]
    if taken and not cfg.output.overwrite:
        raise UserError(f"{taken[0]} exists ({len(taken)} file(s) would be replaced): "
                        "use another --out folder or pass --overwrite")
    segmenters: dict[str, object] = {}
    refiner = make_refiner(cfg)
    t0 = time.perf_counter()
    for f in files:
        image = read_image(f)
        h, w = image.shape[:2]
        from livebg.stages.segment import pick_model

        name = pick_model(cfg.model.name, w, h)
        if name not in segmenters:
            segmenters[name] = make_segmenter(cfg, w, h)
        seg = segmenters[name].segment(image)
        refiner.reset()  # photos are independent: no state from the previous one
        alpha = refiner.refine(image, seg.probability, seg.features)
        a8 = (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8)
        cv2.imwrite(str(out / f"{f.stem}.png"), a8)
        if args.cutout:
            cv2.imwrite(str(out / f"{f.stem}_cutout.png"), np.dstack([image, a8]))
    dt = time.perf_counter() - t0
    print(f"{len(files)} matte(s) written to {out} ({dt / len(files) * 1e3:.0f} ms each)")
    return 0


def cmd_bench(args) -> int:
    from livebg.eval import bench

    cfg = load_config(args)
    _setup_logging("warning")
    return bench.main(cfg, frames=args.frames, as_json=args.json, width=args.width,
                      height=args.height, paced=args.paced, soak_seconds=args.soak)


def cmd_eval(args) -> int:
    """Score the pipeline on photos or clips with ground truth: table, JSON, PNG report."""
    from livebg.eval import evaluate

    cfg = load_config(args)
    _setup_logging("warning")
    try:
        return evaluate.main(cfg, args.data, out=args.out, limit=args.limit,
                             save_alpha=args.save_alpha, progress=not args.quiet)
    except evaluate.DatasetError as e:
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

    try:
        made = clips.generate_clips(args.data, n_clips=args.n, size=(w, h), seed=args.seed,
                                    backgrounds=args.backgrounds, jpeg_quality=args.jpeg,
                                    n_still=args.still, n_move=args.move, n_still_end=args.still)
        dirs = [clips.write_clip(c, Path(args.out) / c.name)
                for c in tqdm(made, total=args.n, unit="clip", leave=False)]
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    print(f"{len(dirs)} clip(s) of {2 * args.still + args.move} frames at {w}x{h} written "
          f"to {args.out}; score them with `livebg eval {args.out}`")
    return 0


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

    p = sub.add_parser("run", help="camera to virtual camera (the daemon)")
    _add_common(p)
    p.add_argument("--frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--realtime", action="store_true",
                   help="treat a file input like a camera: paced to its frame rate, looped, "
                   "newest frame wins (automatic for cameras and virtual, window or overlay "
                   "outputs)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ctl", help="control the running daemon (status, get, set, pause, ...)")
    p.add_argument("action", choices=("status", "get", "set", "pause", "resume", "snapshot",
                                      "reload"))
    p.add_argument("args", nargs="*", metavar="ARG",
                   help="get KEY | set KEY VALUE | snapshot FILE.png")
    p.add_argument("--json", action="store_true", help="print the daemon's raw JSON reply")
    p.add_argument("--socket", metavar="PATH", help="control socket (default: daemon.socket, "
                   "else $XDG_RUNTIME_DIR/livebg/control.sock)")
    p.add_argument("--config", metavar="PATH", help="configuration file to read daemon.socket from")
    p.set_defaults(func=cmd_ctl)

    p = sub.add_parser("doctor", help="check v4l2loopback, cameras, ONNX Runtime, configuration")
    p.add_argument("--config", metavar="PATH", help="configuration file to check")
    p.add_argument("--no-probe", action="store_true", help="do not open cameras to list formats")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="the built-in sample to a video file and a side-by-side PNG")
    _add_common(p, io=False)
    p.add_argument("--out", default="livebg-demo", metavar="DIR",
                   help="folder for the results (default: ./livebg-demo)")
    p.add_argument("--frames", type=int, default=120, metavar="N")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("matte", help="alpha PNGs for photos (batch cut-outs)")
    _add_common(p, io=False)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the alpha PNGs")
    p.add_argument("--cutout", action="store_true", help="also write STEM_cutout.png (RGBA)")
    p.set_defaults(func=cmd_matte)

    p = sub.add_parser("bench", help="per-stage milliseconds and throughput at 1280x720")
    _add_common(p, io=False)
    p.add_argument("--frames", type=int, default=300, metavar="N")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
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
                   "(CLIP/frames/ + CLIP/masks/, see `livebg clips`)")
    p.add_argument("--out", default="livebg-eval", metavar="DIR",
                   help="folder for eval.json and eval.png (default: ./livebg-eval)")
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
    p.set_defaults(func=cmd_clips)

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
    return parser


def _exit_now(rc: int) -> None:
    """End the daemon's process at once, everything already released.

    The interpreter's own teardown of numba, ONNX Runtime and OpenCV takes
    a second or two, which would break the promise that a stop (SIGTERM,
    ``systemctl stop``) is done within one second.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    from livebg.config import ConfigError
    from livebg.system.control import AlreadyRunning
    from livebg.stages.segment import ModelError
    from livebg.sinks.base import SinkError
    from livebg.stages.sources import SourceError

    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
        if argv is None and args.func is cmd_run:
            _exit_now(rc)
        return rc
    except (UserError, ConfigError, SourceError, SinkError, ModelError, AlreadyRunning) as e:
        print(f"livebg: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
