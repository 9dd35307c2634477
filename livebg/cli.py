"""Command line: argument parsing only, one function per subcommand."""

from __future__ import annotations

import argparse
import logging
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
    from livebg.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

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
    p.add_argument("--threads", type=int, metavar="N", help="net threads on the CPU")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any configuration key, e.g. background.blur=0.8")
    p.add_argument("--overwrite", action="store_true", help="allow replacing existing files")


def cmd_run(args) -> int:
    """Camera (or --input) through the pipeline to the virtual camera (or --output)."""
    from livebg.build import make_processor, make_sinks, make_source
    from livebg.pipeline import Pipeline
    from livebg.sinks import StopRequested
    from livebg.sources import SourceError

    cfg = load_config(args)
    _setup_logging(cfg.log.level)
    try:
        source = make_source(cfg)
    except SourceError as e:
        if args.input or cfg.input != "camera":
            raise
        log.warning("%s; running on the built-in sample instead", e)
        cfg.input = "sample"
        source = make_source(cfg)
    w, h = source.width, source.height
    fps = getattr(source, "fps", cfg.camera.fps)
    with source:
        processor = make_processor(cfg, w, h)
        sinks = make_sinks(cfg, w, h, fps)
        try:
            log.info("running: %s -> %s", source.describe(),
                     ", ".join(s.describe() for s in sinks))
            pipeline = Pipeline(source, processor, sinks,
                                latest_wins=cfg.input.startswith(("camera", "/dev/")))
            try:
                result = pipeline.run(args.frames, log_every=cfg.log.stats_interval)
            except StopRequested:
                result = None
            if result:
                log.info("%d frames in %.1f s (%.1f fps)", result.frames, result.seconds,
                         result.fps)
        finally:
            for s in sinks:
                s.close()
    return 0


def _free_name(path: Path) -> Path:
    """``path`` if free, else ``stem-1.ext``, ``stem-2.ext``, ... (never overwrite)."""
    n = 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def cmd_demo(args) -> int:
    """The built-in sample through the pipeline into a video and a side-by-side PNG."""
    import cv2
    import numpy as np

    from livebg.build import make_processor
    from livebg.pipeline import Pipeline
    from livebg.sinks import VideoFileSink
    from livebg.sources import SampleSource

    cfg = load_config(args)
    _setup_logging(cfg.log.level)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = _free_name(out_dir / "livebg-demo.mp4")
    still = _free_name(out_dir / "livebg-demo.png")
    source = SampleSource(width=args.width, height=args.height, fps=30, count=args.frames)
    processor = make_processor(cfg, source.width, source.height)
    with VideoFileSink(video, source.width, source.height, source.fps) as sink:
        result = Pipeline(source, processor, [sink]).run()
    # The side-by-side still: input | matte | output, at the middle of the clip.
    processor.reset()
    image = source.render(args.frames // 2)
    alpha = processor.alpha(image)
    output = processor.compose(image, alpha)
    from livebg.sinks import to_bgr

    matte = cv2.cvtColor((alpha * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    panel = np.hstack([image, matte, to_bgr(output)])
    panel = cv2.resize(panel, (panel.shape[1] // 2, panel.shape[0] // 2),
                       interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(still), panel)
    print(f"video: {video} ({result.frames} frames, {source.width}x{source.height})")
    print(f"still: {still} (input | matte | output)")
    print(f"speed: {result.fps:.1f} frames/s end to end on this machine")
    return 0


def _list_images(inputs: list[str]) -> list[Path]:
    from livebg.sources import IMAGE_EXTENSIONS

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

    from livebg.build import make_segmenter
    from livebg.refine import make_refiner
    from livebg.sources import read_image

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
    refiner = make_refiner(cfg.refine.mode)
    t0 = time.perf_counter()
    for f in files:
        image = read_image(f)
        h, w = image.shape[:2]
        from livebg.segment import pick_model

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
    from livebg import bench

    cfg = load_config(args)
    _setup_logging("warning")
    return bench.main(cfg, frames=args.frames, as_json=args.json, width=args.width,
                      height=args.height)


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
    p.set_defaults(func=cmd_run)

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
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from livebg.config import ConfigError
    from livebg.segment import ModelError
    from livebg.sinks import SinkError
    from livebg.sources import SourceError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, ConfigError, SourceError, SinkError, ModelError) as e:
        print(f"livebg: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
