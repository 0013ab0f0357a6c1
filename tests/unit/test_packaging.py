"""constraints.txt pins every package pyproject.toml asks for, and everything installs from it:
`make venv` (so CI), and the image. The project's metadata names its license and where it is
browsed, the base the alerts' runbook links use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from importlib.metadata import version as metadata_version
from pathlib import Path

import pytest
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` would build, unpacked: what an installation holds."""
    built = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip_wheel, "--no-build-isolation", "--wheel-dir", str(built), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (archive,) = built.glob("roi_worker-*.whl")
    unpacked = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(archive) as contents:
        contents.extractall(unpacked)
    return unpacked


def test_the_wheel_ships_the_package_under_a_collision_free_name_too(wheel: Path) -> None:
    """`roi_worker` is the shim that points at `worker/` by path (one copy of the code), with
    the migrations beside it."""
    shipped = {p.relative_to(wheel / "worker") for p in (wheel / "worker").rglob("*.py")}
    assert shipped == {p.relative_to(ROOT / "worker") for p in (ROOT / "worker").rglob("*.py")}
    assert {p.name for p in (wheel / "roi_worker").rglob("*.py")} == {"__init__.py"}
    migrations = sorted(p.name for p in (wheel / "roi_worker" / "_migrations").glob("*.sql"))
    assert migrations == sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert not list(wheel.rglob("__pycache__"))


def test_the_wheel_ships_the_dashboard_pages_templates_and_files(wheel: Path) -> None:
    """An installed `roi-worker api` can render its page: every template and static file of
    worker/api/ is in the wheel (hatchling ships a package's non-Python files)."""
    for folder in ("templates", "static"):
        source = ROOT / "worker" / "api" / folder
        expected = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
        installed = wheel / "worker" / "api" / folder
        assert expected
        assert {p.relative_to(installed) for p in installed.rglob("*") if p.is_file()} == expected


def test_a_workflow_with_its_own_worker_module_imports_the_producer_helper(
    wheel: Path, tmp_path: Path
) -> None:
    """The README's import works in a workflow whose folder has a worker.py, with nothing but
    the installed wheel (and its dependencies) to import from."""
    (tmp_path / "worker.py").write_text('raise ImportError("the workflow\'s own worker.py")\n')
    probe = (
        "import sys\n"
        "from roi_worker.producer import track_pattern_execution\n"
        "from roi_worker.db.migrate import default_migrations_dir\n"
        "import roi_worker\n"
        "print(roi_worker.__file__, default_migrations_dir(), 'worker' in sys.modules)\n"
    )

    def python(*args: str) -> str:
        """Python in the workflow's folder, importing only from the unpacked wheel."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(wheel)},
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    assert python("-c", probe).split() == [
        str(wheel / "roi_worker" / "__init__.py"),
        str(wheel / "roi_worker" / "_migrations"),
        "False",
    ]
    version = python("-m", "roi_worker", "--version")
    assert version.strip() == f"roi-worker {metadata_version('roi-worker')}"


def test_the_development_install_runs_the_checkout_not_a_copy(tmp_path: Path) -> None:
    """`make venv` installs the project editable: the command and `import roi_worker` must run
    the code of this checkout as it is now, not a copy taken at install time."""
    probe = "import roi_worker.producer as p, roi_worker.db.migrate as m\n"
    probe += "print(p.__file__, m.default_migrations_dir())\n"
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.split()
    assert found == [str(ROOT / "worker" / "producer.py"), str(ROOT / "migrations")]
