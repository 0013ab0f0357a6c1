"""Exit codes and the one-line error every command shares.

0 success; 1 the operation failed (unreachable service, refused migration, invalid events); 2
usage or configuration error. A command that fails prints one line on stderr, never a traceback:
it returns `fail(...)`, or raises and leaves the line to worker.cli.main.
"""

from __future__ import annotations

import sys
from typing import Final

from ..errors import ConfigurationError

PROG: Final = "roi-worker"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # Ctrl-C, as a shell reports it


class UsageError(ConfigurationError):
    """Arguments that parse but do not go together; exit 2 like any usage error."""


def fail(message: str, code: int) -> int:
    """Prints `roi-worker: error: message` on stderr and returns `code`, the exit code."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
