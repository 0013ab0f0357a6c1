"""`roi_worker`: the import name of roi-worker that nothing else claims.

Workflows publish with `from roi_worker.producer import track_pattern_execution`. The package's
folder is `worker/`, the name the project's layout uses, and `worker` is a common name: a
workflow's own worker.py, or an unrelated distribution called worker, would be imported instead
of it. So this file maps the name onto the folder beside it, by path, not by importing
`worker`: in a wheel (which ships both folders, pyproject.toml) and in a source checkout alike.
It works because the package imports its own modules only relatively (tests/unit/test_layers.py).
"""

from importlib.metadata import version
from pathlib import Path

# A package's __path__ is where its submodules are found: here, the worker/ folder beside this one.
__path__ = [str(Path(__file__).resolve().parent.parent / "worker")]
__version__ = version("roi-worker")
