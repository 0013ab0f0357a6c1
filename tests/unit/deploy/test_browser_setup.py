"""deploy/local/browser.sh, which `make test` runs before pytest: silent and quick when
`chromium` and `pdftotext` are there, installs Debian's packages with apt as root when one is
missing, and otherwise fails with one line saying what to do. Run with stand-ins for the
commands it looks for (`chromium`, `pdftotext`, `apt-get`, `id`) on a PATH of their own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
SCRIPT = ROOT / "deploy" / "local" / "browser.sh"
# What the script needs besides the commands the tests stand in for.
TOOLS = ("bash", "dirname", "mkdir", "tail", "chmod")
# An apt-get that records its arguments and, on install, provides both commands.
APT_GET = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = install ]; then
    printf '#!/bin/sh\\necho Chromium 1.0\\n' > "{bin}/chromium"
    printf '#!/bin/sh\\n' > "{bin}/pdftotext"
    chmod +x "{bin}/chromium" "{bin}/pdftotext"
fi
"""


def stand_in(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(body, encoding="utf-8")
    path.chmod(0o755)


def run(tmp_path: Path, *, have: tuple[str, ...], apt: bool, uid: int) -> tuple[int, str, str]:
    """Runs the script with only `have` of chromium and pdftotext, apt-get if `apt`, as `uid`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists())
        (bin_dir / tool).symlink_to(found)
    stand_in(bin_dir, "id", f"#!/bin/sh\necho {uid}\n")
    for command in have:
        stand_in(bin_dir, command, "#!/bin/sh\n")
    if apt:
        stand_in(bin_dir, "apt-get", APT_GET.format(log=tmp_path / "apt.log", bin=bin_dir))
    result = subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)],
        env={"PATH": str(bin_dir), "ROI_BROWSER_LOG": str(tmp_path / "install.log")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def test_does_nothing_when_both_commands_are_there(tmp_path: Path) -> None:
    """With chromium and pdftotext on PATH it exits 0 at once, saying nothing, running no apt."""
    code, out, err = run(tmp_path, have=("chromium", "pdftotext"), apt=True, uid=0)
    assert (code, out, err) == (0, "", "")
    assert not (tmp_path / "apt.log").exists()


def test_installs_both_packages_as_root_when_one_is_missing(tmp_path: Path) -> None:
    """As root with apt, a missing pdftotext installs chromium and poppler-utils, no extras."""
    code, _, err = run(tmp_path, have=("chromium",), apt=True, uid=0)
    assert code == 0, err
    calls = (tmp_path / "apt.log").read_text(encoding="utf-8").splitlines()
    assert calls == ["update", "install -y --no-install-recommends chromium poppler-utils"]
    assert "installed Chromium 1.0" in err


@pytest.mark.parametrize(
    ("apt", "uid", "says"),
    [
        (True, 1000, "not root: run 'sudo apt-get install -y --no-install-recommends chromium"),
        (False, 0, "no apt-get"),
    ],
)
def test_fails_with_one_line_when_it_cannot_install(
    tmp_path: Path, apt: bool, uid: int, says: str
) -> None:
    """Without root or without apt it exits 1 with one line naming what is missing."""
    code, out, err = run(tmp_path, have=(), apt=apt, uid=uid)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("browser.sh: missing chromium pdftotext"), err
    assert says in err


def test_the_script_is_executable() -> None:
    """`make browser` runs it directly."""
    assert os.access(SCRIPT, os.X_OK)
