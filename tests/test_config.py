"""Configuration: defaults, the documented default.yaml, errors, overrides."""

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
