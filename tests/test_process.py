"""``livebg process``: real encode and decode with PyAV, audio and timestamps kept."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from livebg import config
from livebg.cli import main
from livebg.offline.decode import OfflineError
from livebg.offline.encode import has_encoder
from livebg.offline.process import ProcessOptions, partial_path, process_file

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "livebg" / "data" / "astronaut.jpg"
TB = Fraction(1, 90000)


def make_clip(path: Path, *, w: int = 256, h: int = 144, n: int = 12, vfr: bool = False,
              rotate: int = 0, audio: bool = True) -> Path:
    """An H.264 clip of the astronaut photo with a 440 Hz AAC tone, made with PyAV."""
    image = cv2.resize(cv2.imread(str(PHOTO)), (w, h))
    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=30)
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    v.time_base = v.codec_context.time_base = TB
    if rotate:
        v.set_display_rotation(rotate)
    a = c.add_stream("aac", rate=48000) if audio else None
    if a is not None:
        a.layout = "mono"
    t = 0
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.roll(image, 2 * i, axis=1), format="bgr24")
        frame.pts, frame.time_base = t, TB
        t += 6000 if vfr and i % 3 == 0 else 3000
        c.mux(v.encode(frame))
    c.mux(v.encode(None))
    if a is not None:
        sr = 48000
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(sr * t / 90000)) / sr)).astype(np.float32)
        for k in range(0, tone.size, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts = sr, k
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    c.close()
    return path


def video_times(path: Path, decoder: str | None = None) -> tuple[list[float], list[np.ndarray]]:
    """(presentation times in seconds, frames as BGRA) of the first video stream."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if decoder:  # FFmpeg's own VP9 decoder drops the alpha; libvpx keeps it
            cc = av.CodecContext.create(decoder, "r")
            frames = [f for p in c.demux(s) for f in cc.decode(p)]
        else:
            frames = list(c.decode(s))
        return ([float(f.pts * s.time_base) for f in frames],
                [f.to_ndarray(format="bgra") for f in frames])


def audio_samples(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def cfg(**values):
    c = config.Config()
    values = {"refine.mode": "guided", **values}
    return config.set_values(c, values)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4")


def test_mp4_keeps_every_frame_timestamps_and_audio(clip, tmp_path):
    out = tmp_path / "out.mp4"
    r = process_file(clip, out, cfg(), ProcessOptions(progress=False))
    t_in, _ = video_times(clip)
    t_out, frames = video_times(out)
    assert r.frames == len(t_in) == 12
    assert t_out == pytest.approx(t_in, abs=1e-4)
    a_in, a_out = audio_samples(clip), audio_samples(out)
    assert a_in.size > 15000 and np.array_equal(a_in, a_out)  # copied, not re-encoded
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        assert b.duration == pytest.approx(a.duration, abs=2e4)  # microseconds
    # the output is the composite (background blurred), not the input passed through
    _, src = video_times(clip)
    assert np.abs(frames[6].astype(int) - src[6].astype(int)).mean() > 1.0
    assert not partial_path(out).exists()


def test_variable_frame_rate_survives(tmp_path):
    src = make_clip(tmp_path / "vfr.mp4", vfr=True, audio=False)
    out = tmp_path / "out.mov"
    process_file(src, out, cfg(), ProcessOptions(progress=False))
    t_in, _ = video_times(src)
    gaps = np.diff(t_in)
    assert gaps.max() > 1.5 * gaps.min()  # the input really is VFR
    assert video_times(out)[0] == pytest.approx(t_in, abs=1e-4)


@pytest.mark.parametrize("name,decoder", [("out.webm", "libvpx-vp9"), ("out.mov", None)])
def test_alpha_survives_the_round_trip(clip, tmp_path, name, decoder):
    out = tmp_path / name
    process_file(clip, out, cfg(**{"background.mode": "transparent"}),
                 ProcessOptions(progress=False))
    _, frames = video_times(out, decoder)
    alpha = frames[6][..., 3].astype(np.float32) / 255
    person = cv2.resize(cv2.imread(str(REPO / "livebg/data/astronaut_alpha.png"), 0),
                        alpha.shape[::-1]) > 127
    person = np.roll(person, 12, axis=1)
    assert len(frames) == 12
    assert alpha[person].mean() > 0.8 and alpha[~person].mean() < 0.2


def test_rotation_is_applied_and_png_folder_keeps_alpha(tmp_path):
    src = make_clip(tmp_path / "rot.mp4", rotate=90, audio=False, n=3)
    out = tmp_path / "frames"
    process_file(src, out, cfg(**{"background.mode": "transparent"}),
                 ProcessOptions(progress=False))
    png = cv2.imread(str(out / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (256, 144, 4)  # upright: taller than wide
    assert 20 < png[..., 3].mean() < 235
    assert (out / "timestamps.csv").read_text().splitlines()[1:] == [
        "0,0.000000", "1,0.033333", "2,0.066667"]


def test_matte_only_writes_the_alpha_as_grey(clip, tmp_path):
    out = tmp_path / "matte.mp4"
    process_file(clip, out, cfg(), ProcessOptions(matte_only=True, progress=False))
    _, frames = video_times(out)
    f = frames[6][..., :3].astype(int)
    assert np.abs(f[..., 0] - f[..., 2]).max() <= 6  # grey
    assert f.min() < 30 and f.max() > 225


def test_existing_output_is_refused_and_kept(clip, tmp_path, capsys):
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"mine")
    rc = main(["process", str(clip), str(out), "--refine", "none", "-q"])
    assert rc == 2 and out.read_bytes() == b"mine"
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("content,quiet", [(b"not a video at all", "-q"), (None, "-q"),
                                           (b"not a video at all", None), (None, None)])
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, quiet):
    """One line, also with the progress bar on: no bar is drawn before the input opens."""
    src = tmp_path / "bad.mp4"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out.mp4"
    p = subprocess.run([sys.executable, "-m", "livebg", "process", str(src), str(out)]
                       + ([quiet] if quiet else []),
                       capture_output=True, text=True, env=os.environ, timeout=120)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "livebg: error:" in p.stderr, p.stderr
    assert not out.exists() and not partial_path(out).exists()


def test_unknown_output_kind_names_the_ones_that_work(clip, tmp_path):
    with pytest.raises(OfflineError, match=r"\.webm"):
        process_file(clip, tmp_path / "out.avi", cfg(), ProcessOptions(progress=False))


def test_error_midway_leaves_no_file_under_either_name(clip, tmp_path, monkeypatch):
    from livebg.offline import process as proc_mod

    calls = {"n": 0}
    real = proc_mod._render

    def fail_on_fifth(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(proc_mod, "_render", fail_on_fifth)
    folder = tmp_path / "o"
    folder.mkdir()
    out = folder / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        process_file(clip, out, cfg(), ProcessOptions(progress=False))
    assert calls["n"] == 5
    assert list(folder.iterdir()) == []


def test_the_wheel_has_the_encoders_the_readme_names():
    for name in ("libx264", "libvpx-vp9", "prores_ks", "png"):
        assert has_encoder(name), name
    assert not has_encoder("no-such-encoder")


@pytest.mark.slow
def test_several_files_with_out_dir_in_a_pool(clip, tmp_path):
    second = make_clip(tmp_path / "second.mp4", n=8)
    out = tmp_path / "results"
    rc = main(["process", str(clip), str(second), "--out", str(out), "--refine", "none",
               "-q", "--jobs", "2"])
    assert rc == 0
    assert len(video_times(out / "in.mp4")[0]) == 12
    assert len(video_times(out / "second.mp4")[0]) == 8
    assert np.array_equal(audio_samples(out / "second.mp4"), audio_samples(second))
