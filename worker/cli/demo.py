"""`roi-worker demo`: the worker on a sample stream against the local services (worker.demo)."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from ..errors import ConfigurationError


def register(commands: Any) -> None:
    """Adds `demo` to the `roi-worker` subcommands."""
    demo_cmd = commands.add_parser(
        "demo",
        help="run the worker against the local services and publish a sample stream",
        description="Starts `roi-worker run` (creating the topics, endpoints on 127.0.0.1, log "
        "in .local/demo-worker.log), publishes two weeks of sample events of six patterns plus a "
        "few invalid and duplicated messages, waits until the worker has processed them all, "
        "prints the ROI per pattern and keeps the worker running until Ctrl-C.",
    )
    demo_cmd.add_argument(
        "--seconds",
        type=_seconds,
        default=None,
        metavar="N",
        help="stop after N seconds, 0: right after the table (default: DEMO_SECONDS, else "
        "run until Ctrl-C)",
    )
    demo_cmd.set_defaults(handler=_demo)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text!r}")
    return value


def _demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo
    from ..process import configure_logging
    from ..settings import load_settings

    seconds: float | None = args.seconds
    if seconds is None and os.environ.get("DEMO_SECONDS", "").strip():
        try:
            seconds = _seconds(os.environ["DEMO_SECONDS"].strip())
        except argparse.ArgumentTypeError as exc:
            raise ConfigurationError(f"DEMO_SECONDS: {exc}") from None
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return run_demo(settings, seconds)
