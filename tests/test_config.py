"""Configuration: defaults, the documented default.yaml, errors, overrides."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from livebg import config
from livebg.config import Config, ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_default_yaml_documents_exactly_the_defaults():
    data = yaml.safe_load((REPO / "config" / "default.yaml").read_text())
    assert data == Config().to_dict()


def test_every_option_has_help():
    rows = config.describe()
    assert len(rows) > 15
    assert all(help_ for _, _, help_ in rows)


def write(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_file_overrides_defaults(tmp_path):
    cfg = config.load(write(tmp_path, "background:\n  mode: color\n  color: '#ff0000'\n"
                                      "camera:\n  device: 2\n"))
    assert cfg.background.mode == "color"
    assert config.parse_color(cfg.background.color) == (0, 0, 255)
    assert cfg.camera.device == "2"  # a YAML int index is taken as the camera index
    assert cfg.model.threads == 1


@pytest.mark.parametrize("text, words", [
    ("backgrund:\n  mode: blur\n", ["unknown key 'backgrund'", "did you mean 'background'"]),
    ("background:\n  blur: 3\n", ["background.blur = 3", "from 0 to 1"]),
    ("background:\n  mode: sparkles\n", ["background.mode = 'sparkles'", "one of blur"]),
    ("model:\n  threads: two\n", ["model.threads = 'two'", "whole number"]),
    ("background:\n  color: red\n", ["background.color = 'red'", "#rrggbb"]),
    ("background: [1, 2]\n", ["background", "expected a mapping"]),
    ("model:\n  name: [\n", ["not valid YAML", "line"]),
])
def test_bad_file_is_one_clear_line(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        config.load(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg
    for w in words:
        assert w in msg


def test_image_background_needs_an_existing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        config.load(write(tmp_path, f"background:\n  mode: image\n  image: {tmp_path}/nope.jpg\n"))


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "absent.yaml")


def test_user_file_found_through_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "livebg").mkdir()
    (tmp_path / "livebg" / "config.yaml").write_text("log:\n  level: debug\n")
    assert config.user_config_path() == tmp_path / "livebg" / "config.yaml"
    assert config.load().log.level == "debug"


def test_overrides_are_parsed_and_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    cfg = config.load(overrides={"background.blur": "0.8", "output.sinks": "[null, window]"})
    assert cfg.background.blur == 0.8
    assert cfg.output.sinks == ["null", "window"]
    with pytest.raises(ConfigError, match="command line: background.blur = 9"):
        config.load(overrides={"background.blur": "9"})
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        config.load(overrides={"background.nope": "1"})


def test_set_value_leaves_the_original_untouched():
    cfg = Config()
    new = config.set_value(cfg, "model.name", "square")
    assert new.model.name == "square" and cfg.model.name == "auto"
    assert new.get("model.name") == "square"


def test_overrides_are_checked_together_in_any_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    picture = tmp_path / "beach.jpg"
    picture.write_bytes(b"x")
    cfg = config.load(overrides={"background.mode": "image", "background.image": str(picture)})
    assert cfg.background.mode == "image" and cfg.background.image == str(picture)
    with pytest.raises(ConfigError, match="missing.jpg'?: no such file"):
        config.load(overrides={"background.mode": "image",
                               "background.image": str(tmp_path / "missing.jpg")})


# -- files that are not configurations (issue 11, items 7 and 8) ------------------------

def _bad_files(tmp_path) -> dict:
    """name -> path of a config.yaml that no loader may crash on."""
    d = {}

    def put(name, data: bytes):
        p = tmp_path / f"{name}.yaml"
        p.write_bytes(data)
        d[name] = p

    put("non-utf8", b"log:\n  level: d\xffbug\n")
    put("float-400-digits", b"background:\n  blur: " + b"1" * 400 + b".5\n")
    put("int-5000-digits", b"model:\n  threads: " + b"1" * 5000 + b"\n")
    put("nested-2000", b"model: " + b"[" * 2000 + b"\n")
    put("duplicate-key", b"background:\n  mode: blur\n  mode: color\n")
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(50 * 2**20)  # 50 MB (sparse): must be refused by size, not parsed
    d["50MB"] = big
    (tmp_path / "folder.yaml").mkdir()
    d["folder"] = tmp_path / "folder.yaml"
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop.name)
    d["symlink-loop"] = loop
    dangling = tmp_path / "dangling.yaml"
    dangling.symlink_to(tmp_path / "gone.yaml")
    d["dangling-symlink"] = dangling
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    d["dev-zero"] = zero
    return d


BAD_WORDS = {"non-utf8": "not UTF-8", "float-400-digits": "too long",
             "int-5000-digits": "too long", "nested-2000": "nested",
             "duplicate-key": "'mode' is given twice", "50MB": "at most 1 MB",
             "folder": "is a folder", "symlink-loop": "symlink loop",
             "dangling-symlink": "does not exist", "dev-zero": "not a regular file"}


@pytest.mark.parametrize("name", sorted(BAD_WORDS))
def test_unusable_file_is_one_line(tmp_path, name):
    path = _bad_files(tmp_path)[name]
    with pytest.raises(ConfigError) as e:
        config.load(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and BAD_WORDS[name] in msg
    assert len(msg) < 300


@pytest.mark.parametrize("name", ["dangling-symlink", "folder", "non-utf8"])
def test_unusable_user_file_is_not_taken_for_an_absent_one(tmp_path, monkeypatch, name):
    """A dangling symlink or a folder at ~/.config/livebg/config.yaml is an error, not the
    defaults applied silently."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    target = config.user_config_path()
    target.parent.mkdir(parents=True)
    os.rename(_bad_files(tmp_path)[name], target)
    with pytest.raises(ConfigError, match="config.yaml"):
        config.load()


def test_empty_file_means_defaults_at_start_but_not_on_reload(tmp_path):
    path = write(tmp_path, "")
    assert config.load(path) == Config()
    with pytest.raises(ConfigError, match="is empty"):
        config.load(path, empty_ok=False)
    path.write_text("# only a comment: the defaults, on purpose\n")
    assert config.load(path, empty_ok=False) == Config()


@pytest.mark.parametrize("name", sorted(BAD_WORDS) + ["empty"])
def test_cli_commands_never_crash_on_a_bad_file(tmp_path, name):
    """run: one line, exit 2 at start; ctl and doctor: no traceback."""
    path = tmp_path / "empty.yaml" if name == "empty" else _bad_files(tmp_path)[name]
    if name == "empty":
        path.write_text("")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if name != "empty":
        r = subprocess.run([sys.executable, "-m", "livebg", "run", "--config", str(path),
                            "--input", "sample", "--output", "null", "--frames", "1"],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("livebg: error:") and r.stderr.count("\n") == 1, r.stderr
    for cmd in (["ctl", "status", "--config", str(path)], ["doctor", "--no-probe",
                                                            "--config", str(path)]):
        r = subprocess.run([sys.executable, "-m", "livebg", *cmd], capture_output=True,
                           text=True, timeout=120, env=env)
        assert "Traceback" not in r.stderr + r.stdout, (cmd, r.stderr)


# -- values (issue 15, item 12) --------------------------------------------------------

def test_unquoted_colour_says_that_hash_starts_a_comment(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, "background:\n  mode: color\n  color: #00ff00\n"))
    msg = str(e.value)
    assert "background.color is empty" in msg and "comment" in msg and "quote" in msg


def test_messages_write_values_as_yaml(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, "model:\n  name: true\n"))
    assert "model.name = true:" in str(e.value) and "True" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, "daemon:\n  on_demand: [1]\n"))
    assert "daemon.on_demand = [1]: must be true or false" in str(e.value)


def test_duplicate_top_level_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"line 3: key 'background' is given twice"):
        config.load(write(tmp_path, "background:\n  blur: 0.2\nbackground:\n  blur: 0.9\n"))
