"""``livebg process``'s command line: which outputs, then one file or a pool."""

from __future__ import annotations

import logging
from pathlib import Path

from livebg.offline.decode import OfflineError, VideoInput
from livebg.offline.process import ProcessOptions, process_file, process_many

log = logging.getLogger(__name__)


def plan(paths: list[str], out_dir: str | None, fmt: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs: ``IN OUT``, or ``IN... --out DIR`` (DIR/STEM.FORMAT each)."""
    if out_dir is None:
        if len(paths) != 2:
            raise OfflineError("usage: livebg process IN OUT, or livebg process IN... --out DIR")
        return [(Path(paths[0]), Path(paths[1]))]
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise OfflineError(f"--out {folder}: not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "" if fmt == "png" else f".{fmt}"
    jobs = [(Path(p), folder / f"{Path(p).stem}{suffix}") for p in paths]
    names = [o.name for _, o in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise OfflineError(f"several inputs would write {folder / dup[0]}: run them separately")
    return jobs


def main(cfg, args) -> int:
    """Process, then print one line per output with its speed."""
    from tqdm import tqdm

    jobs = plan(args.paths, args.out, args.format)
    options = ProcessOptions(matte_only=args.matte_only, overwrite=cfg.output.overwrite,
                             progress=not args.quiet)
    for src, out in jobs:
        if src.resolve() == out.resolve():
            raise OfflineError(f"{out}: the output would replace its own input")
    if len(jobs) == 1 or args.jobs <= 1:
        for src, _ in jobs:  # a missing or unreadable input fails before any progress bar
            VideoInput(src).close()
        results = []
        for src, out in jobs:
            with tqdm(unit="frame", desc=src.name, disable=args.quiet, dynamic_ncols=True,
                      leave=False) as bar:
                results.append(process_file(src, out, cfg, options, bar))
    else:
        results = process_many(jobs, cfg, options, workers=args.jobs)
    for r in results:
        speed = f"{r.fps:.1f} frames/s"
        if r.duration:
            speed += f", {r.duration / r.seconds:.2f}x real time"
        print(f"{r.output}: {r.frames} frames ({r.duration:.2f} s of video) in "
              f"{r.seconds:.1f} s ({speed})")
    return 0
