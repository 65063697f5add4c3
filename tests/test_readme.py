"""The README's commands are the ones that exist and work (issue 14 §6): every
``sesame …`` command it shows is one the command line knows, the quick start's
scripts are there and executable, and its ``user add`` example runs as written
on an instance with the demo citizens."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from idp.app.cli import build_parser, main
from idp.app.demo import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHOWN = [line.split("#")[0].strip() for block in re.findall(r"```sh\n(.*?)```", README, re.S)
         for line in block.splitlines() if re.match(r"\s*(\.venv/bin/)?sesame\b", line)]


def commands_shown() -> list[list[str]]:
    """``sesame portal list | show ENTITY_ID`` shows several: each alternative on its own."""
    found = []
    for line in SHOWN:
        words = line.split()
        words = words[words.index("sesame") + 1:] if "sesame" in words else words[1:]
        first, alternatives = words[0], " ".join(words[1:]).split("|")
        for alternative in alternatives:
            found.append([first, *alternative.split()[:1]])
    return found


def test_the_readme_shows_sesame_commands():
    assert len(SHOWN) >= 10


@pytest.mark.parametrize("command", commands_shown(), ids=" ".join)
def test_each_command_shown_is_one_the_command_line_knows(command):
    words = [w for w in command if not w.startswith("-")]
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*words, "--help"])
    assert done.value.code == 0


def test_the_quick_start_scripts_exist_and_run():
    for script in ("scripts/demo", "scripts/test"):
        assert f"./{script}" in README
        assert os.access(ROOT / script, os.X_OK), script


def test_the_user_add_example_runs_as_written_beside_the_demo_citizens(tmp_path, monkeypatch, capsys):
    from tests.conftest import write_node

    (line,) = [line for line in SHOWN if " user add " in line]
    words = line.split()[line.split().index("sesame") + 1:]
    words[words.index("USERNAME")] = "sophie.lambert"
    config = write_node(tmp_path / "node", demo=True)
    monkeypatch.setenv("SESAME_NEW_PASSWORD", f"{DEMO_PASSWORD}-Sophie")
    from idp.app.config import load_settings
    from idp.app.demo import create_citizens
    from idp.app.services import Services

    services = Services.build(load_settings(config, environ={}))
    create_citizens(services)  # Marie, Jan and Lea, as in the demo
    services.database.dispose()
    assert main(["--config", str(config), *words]) == 0, capsys.readouterr().err
    assert "refused" not in capsys.readouterr().err
