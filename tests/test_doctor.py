"""``livebg doctor`` on a fake sysfs tree (the test machine has no video devices)."""

from __future__ import annotations

from pathlib import Path

import pytest

from livebg.system import doctor

from livebg.system import devices as loopback
from livebg.cli import main


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))


def fake_sys(root: Path, *, module: bool, exclusive_caps: str = "Y", loop_devices=("video10",),
             cameras=("video0",)) -> Path:
    if module:
        params = root / "module" / "v4l2loopback" / "parameters"
        params.mkdir(parents=True)
        (params / "exclusive_caps").write_text(exclusive_caps + "\n")
        (params / "card_label").write_text("livebg\n")
        (params / "devices").write_text("1\n")
    v4l = root / "class" / "video4linux"
    v4l.mkdir(parents=True)
    for name in loop_devices if module else ():
        (v4l / name).mkdir()
        (v4l / name / "name").write_text("livebg\n")
    for name in cameras:
        (v4l / name).mkdir()
        (v4l / name / "name").write_text("Integrated Camera\n")
        (v4l / name / "device").mkdir()  # a real camera has a parent bus device
    return root


def problems(checks):
    return [c for c in checks if c.ok is False]


def test_missing_module_is_a_problem_with_the_modprobe_fix(tmp_path):
    root = fake_sys(tmp_path / "sys", module=False)
    checks = doctor.check_module(root)
    (p,) = problems(checks)
    assert "not loaded" in p.detail
    fixes = " ".join(p.fixes)
    assert doctor.MODPROBE in fixes
    assert "/etc/modules-load.d/v4l2loopback.conf" in fixes
    assert "/etc/modprobe.d/v4l2loopback.conf" in fixes and "exclusive_caps=1" in fixes


def test_exclusive_caps_off_is_a_problem(tmp_path):
    root = fake_sys(tmp_path / "sys", module=True, exclusive_caps="N,N")
    (p,) = problems(doctor.check_module(root))
    assert "exclusive_caps" in p.detail and "Chrome" in p.detail


def test_good_module_and_devices(tmp_path):
    root = fake_sys(tmp_path / "sys", module=True)
    assert problems(doctor.check_module(root)) == []
    assert loopback.video_devices(root) == [("/dev/video0", "Integrated Camera", False),
                                            ("/dev/video10", "livebg", True)]
    assert loopback.loopback_devices(root) == ["/dev/video10"]
    devs = doctor.check_devices(None, root)
    assert devs and devs[0].ok and "/dev/video10" in devs[0].detail


def test_module_without_devices(tmp_path):
    root = fake_sys(tmp_path / "sys", module=True, loop_devices=())
    assert problems(doctor.check_devices(None, root))


def test_formats_summary():
    text = """ioctl: VIDIOC_ENUM_FMT
	Type: Video Capture

	[0]: 'MJPG' (Motion-JPEG, compressed)
		Size: Discrete 1280x720
			Interval: Discrete 0.033s (30.000 fps)
		Size: Discrete 640x480
			Interval: Discrete 0.033s (30.000 fps)
	[1]: 'YUYV' (YUYV 4:2:2)
		Size: Discrete 640x480
			Interval: Discrete 0.033s (30.000 fps)
			Interval: Discrete 0.067s (15.000 fps)
"""
    assert doctor.summarize_formats(text) == "MJPG 1280x720@30 640x480@30; YUYV 640x480@30"


def test_bad_configuration_is_a_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("background:\n  blur: 9\n")
    checks, cfg = doctor.check_config(path)
    assert cfg is None and checks[0].ok is False and "background.blur = 9" in checks[0].detail


def test_doctor_exit_status(tmp_path, capsys):
    bad = fake_sys(tmp_path / "bad", module=False)
    assert doctor.main(None, sys_root=bad, probe_cameras=False) == 1
    out = capsys.readouterr().out
    assert "FAIL v4l2loopback" in out and "fix: sudo modprobe v4l2loopback" in out
    assert "onnxruntime" in out and "CPUExecutionProvider" in out
    good = fake_sys(tmp_path / "good", module=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("input: camera\n")
    # /dev/video0 does not exist here: camera.device is reported as a problem.
    assert doctor.main(cfg, sys_root=good, probe_cameras=False) == 1
    assert "camera.device" in capsys.readouterr().out
    cfg.write_text("input: sample\n")
    assert doctor.main(cfg, sys_root=good, probe_cameras=False) == 0
    assert "no problems found" in capsys.readouterr().out


def test_doctor_command(capsys):
    rc = main(["doctor", "--no-probe"])
    out = capsys.readouterr().out
    # The exit status follows what it printed: 0 exactly when it found no problem.
    assert (rc == 0) == ("no problems found" in out) and rc in (0, 1), out


def test_tray_libraries_missing_name_the_package_for_the_distribution():
    """15.4: a missing X11 library of Qt's is a problem with the install command (real lookups)."""
    libs = {"libc.so.6": ("libc6", "glibc", "glibc"),
            "libxcb-livebg-not-there.so.0": ("libxcb-nothere0", "xcb-util-nothere",
                                             "xcb-nothere")}
    debian = doctor.check_tray_libraries(libs, 'PRETTY_NAME="Debian 12"\nID=debian\n')
    assert [c.ok for c in debian] == [False]
    assert "libxcb-livebg-not-there.so.0" in debian[0].detail and "libc.so" not in debian[0].detail
    assert debian[0].fixes == ["sudo apt install libxcb-nothere0"]
    ubuntu = doctor.check_tray_libraries(libs, "ID=ubuntu\nID_LIKE=debian\n")
    assert ubuntu[0].fixes == ["sudo apt install libxcb-nothere0"]
    fedora = doctor.check_tray_libraries(libs, 'ID=fedora\n')
    assert fedora[0].fixes == ["sudo dnf install xcb-util-nothere"]
    other = doctor.check_tray_libraries(libs, "ID=gentoo\n")
    assert [f.split("  ")[0] for f in other[0].fixes] == [
        "sudo apt install libxcb-nothere0", "sudo dnf install xcb-util-nothere",
        "sudo pacman -S xcb-nothere"]
    present = doctor.check_tray_libraries({"libc.so.6": ("libc6", "glibc", "glibc")}, "ID=debian")
    assert [c.ok for c in present] == [True]


def test_every_library_qt_needs_is_named_with_three_packages():
    assert "libxcb-cursor.so.0" in doctor.QT_XCB_LIBRARIES  # the one Debian 12 lacked
    for soname, packages in doctor.QT_XCB_LIBRARIES.items():
        assert soname.startswith("lib") and ".so." in soname and len(packages) == 3


def test_doctor_says_why_cuda_does_not_run():
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider")
    checks = {c.topic: c for c in doctor.check_providers(None)}
    if "CPUExecutionProvider" not in checks["onnxruntime"].detail.split("runs on ")[1][:25]:
        pytest.skip("CUDA runs on this machine")
    from livebg.stages import segment

    assert segment.cuda_problem, "the reason was kept"
    assert segment.cuda_problem in checks["CUDA"].detail


def test_configuration_fix_points_to_the_shipped_defaults(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("background:\n  blur: 9\n")
    checks, _ = doctor.check_config(path)
    assert "livebg config --print-default" in checks[0].fixes[0]
