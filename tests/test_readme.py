"""Every command the README shows must exist as written: scripts, their flags, make targets."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```\n(.*?)```", README, re.S)
LINES = [ln.split("#")[0].strip() for block in BLOCKS for ln in block.splitlines()]
INLINE = re.findall(r"`((?:python|torchrun)[^`]*)`", README)
COMMANDS = [c for c in LINES + INLINE if re.search(r"\b\w+\.py\b", c)]


def flags_by_script():
    found = {}
    for cmd in COMMANDS:
        script = re.search(r"\b(\w+\.py)\b", cmd).group(1)
        found.setdefault(script, set()).update(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", cmd.split(script, 1)[1]))
    return found


def test_the_readme_shows_the_step_commands():
    assert set(flags_by_script()) >= {"resize_video.py", "delete_not_resized.py", "create_fmrgbdata.py",
                                     "visualize.py", "delete_allmp4.py", "train.py", "predict.py"}


@pytest.mark.parametrize("script", sorted(flags_by_script()))
def test_every_flag_the_readme_shows_exists(script):
    help_text = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                               timeout=120, cwd=ROOT).stdout
    missing = [f for f in flags_by_script()[script] if f not in help_text]
    assert not missing, f"README shows {script} {missing}, which --help does not list"


def test_every_make_target_the_readme_shows_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = {t for block in BLOCKS for t in re.findall(r"^make ([\w-]+)", block, re.M)}
    assert targets >= {"demo", "test"}
    for t in targets:
        assert re.search(rf"^{re.escape(t)}:", makefile, re.M), f"make {t} is in the README but not the Makefile"


def test_flags_in_the_readme_tables_exist():
    helps = "".join(subprocess.run([sys.executable, str(ROOT / s), "--help"], capture_output=True, text=True,
                                   timeout=120).stdout for s in ("create_fmrgbdata.py", "train.py"))
    flags = re.findall(r"^\| `(--\w+)", README, re.M)
    assert "--frequency_param" in flags
    for flag in flags:
        assert flag in helps
