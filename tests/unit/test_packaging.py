"""constraints.txt pins every package pyproject.toml asks for, and everything installs from it:
`make venv` (so CI), and the image. The project's metadata names its license and where it is
browsed, the base the alerts' runbook links use."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.fullmatch(line.strip())
        assert match, f"constraints.txt: {line!r} is not name==version"
        found[canonicalize_name(match[1])] = match[2]
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(text) for text in listed]


def test_every_requirement_is_pinned_within_its_range() -> None:
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in constraints.txt: run make constraints"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pinned[name]}, outside {requirement}"
        )


def test_this_environment_was_installed_from_the_constraints() -> None:
    """`make venv` installs with -c constraints.txt, so every pinned package is at its pin."""
    for name, pinned in pins().items():
        assert version(name) == pinned, f"{name} {version(name)} installed, {pinned} pinned"


def test_make_venv_and_the_image_install_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -c constraints.txt -e '.[dev]'" in makefile
    assert "$(VENV)/.installed: pyproject.toml constraints.txt" in makefile
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY pyproject.toml README.md LICENSE constraints.txt ./" in dockerfile
    assert "pip install --constraint constraints.txt /dist/*.whl" in dockerfile


def test_the_project_is_browsed_where_the_runbook_links_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    alerts = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    base = re.search(r"^# runbook base: (\S+)$", alerts, re.MULTILINE)
    assert base, "alerts.yml has no '# runbook base:' line"
    urls = project["urls"]
    assert f"{urls['Repository']}/blob/main" == base[1].rstrip("/")
    for name, url in urls.items():
        assert url.startswith(urls["Repository"]), f"{name} = {url} is not in the repository"
    assert urls["Runbook"] == f"{base[1].rstrip('/')}/docs/operations.md"


def test_the_license_is_stated_and_shipped() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"]
    for name in project["license-files"]:
        assert (ROOT / name).is_file(), name
    assert version("roi-worker")  # installed with the metadata above
