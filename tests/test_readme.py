"""The README stays true to the code: its commands, options and keys exist."""

import re
from pathlib import Path

from livebg import config
from livebg.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_every_configuration_key_is_documented_with_its_default():
    for key, default, _ in config.describe():
        row = re.search(rf"^\| `{re.escape(key)}` \| `([^`]*)` \|", README, re.M)
        assert row, f"README's configuration table lacks {key}"
        shown = row.group(1)
        if isinstance(default, bool):
            assert shown == str(default).lower(), key
        elif isinstance(default, (int, float)):
            assert float(shown) == default, key
        elif isinstance(default, str):
            assert shown == f'"{default}"', key


def test_every_subcommand_is_documented():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        assert f"`livebg {name}" in README, f"README does not mention livebg {name}"


def test_ci_runs_exactly_the_readme_test_command():
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    assert test_cmd in (REPO / ".ci" / "run").read_text()
    install = next(b.strip() for b in blocks if "livebg demo" in b)
    assert install.startswith("python3 -m venv .venv") and install.endswith("livebg demo")


def test_pictures_exist():
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        assert (REPO / path).is_file(), path


def test_every_module_in_the_layout_table_exists():
    table = README[README.index("| folder / module |"):README.index("### The segmentation nets")]
    names = re.findall(r"^\| `([^`]+)`", table, re.M)
    assert len(names) >= 10
    for name in names:
        assert (REPO / "livebg" / name).exists(), f"README names livebg/{name}, which is gone"
    for pkg in (REPO / "livebg").iterdir():
        if pkg.is_dir() and (pkg / "__init__.py").exists():
            assert any(n.startswith(f"{pkg.name}/") for n in names), \
                f"README's table lacks livebg/{pkg.name}/"
