"""`roi-worker run`: the worker itself, until SIGTERM or Ctrl-C (worker.consume.pipeline).

worker.cli.launch takes SIGTERM before this module loads; once the pipeline runs, its
ShutdownWatchdog (worker/process.py) does.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BrokerUnavailableError
from .exits import EXIT_FAILED, EXIT_OK, fail


def register(commands: Any) -> None:
    """Adds `run` to the `roi-worker` subcommands."""
    run_cmd = commands.add_parser(
        "run",
        help="consume ROI_TOPIC and store every event (the worker)",
        description="Joins consumer group ROI_GROUP_ID on ROI_TOPIC and stores each event in "
        "PostgreSQL exactly once; invalid ones go to the dead-letter topic. Serves /metrics, "
        "/healthz and /readyz on ROI_METRICS_PORT. SIGTERM or Ctrl-C stops it cleanly.",
    )
    run_cmd.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    del args
    from prometheus_client import CollectorRegistry

    from ..consume.pipeline import Chore, Pipeline
    from ..consume.ratings_publisher import RatingsPublisher
    from ..ops.retention_schedule import RetentionSchedule
    from ..process import ShutdownWatchdog, configure_logging, tune_for_throughput
    from ..settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    tune_for_throughput()
    registry = CollectorRegistry()
    # Beside consuming, until the pipeline stops: the ratings publisher (one replica at a time
    # publishes), and retention with ROI_RETENTION_DAYS.
    chores: list[Chore] = [lambda stop: RatingsPublisher(settings, stop, registry=registry).start()]
    if settings.retention_days:
        chores.append(lambda stop: RetentionSchedule(settings, stop).start())
    pipeline = Pipeline(settings, chores=chores, registry=registry)
    watchdog = ShutdownWatchdog(pipeline.stop)
    watchdog.install()
    try:
        pipeline.run()
    except BrokerUnavailableError as exc:
        if pipeline.stopping:  # asked to stop while it was still starting
            return EXIT_OK
        return fail(f"cannot start: {exc}", EXIT_FAILED)
    return EXIT_OK
