"""`roi-worker replay` and `roi-worker retention`: backfill from a topic, and delete old raw
executions (docs/operations.md). Arguments and output only; the logic is worker.ops.replay and
worker.ops.retention, loaded when a command runs. Failures propagate to worker.cli.main.main:
one line, exit 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ..errors import ConfigurationError
from ..roi.formatting import table
from .args import add_execute_argument, plans_only
from .exits import EXIT_FAILED, EXIT_OK
from .progress import Progress

if TYPE_CHECKING:
    from ..ops.replay import PartitionReport, Plan, Start

_OFFSETS: Final = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_DAYS: Final = re.compile(r"^([1-9][0-9]{0,5})d$")
MAX_DAYS: Final = 36_500
COLUMNS: Final = (
    "partition",
    "start",
    "end",
    "read",
    "inserted",
    "duplicates",
    "invalid",
    "conflicts",
    "refused",
    "expired",
    "status",
)


def register(commands: Any) -> None:
    """Adds `replay` and `retention` to the `roi-worker` subcommands."""
    replay_cmd = commands.add_parser(
        "replay",
        help="re-read a topic range into the database (backfill); always ends",
        description="Reads each partition of --topic from a start (--from-beginning, "
        "--from-time or --from-offsets) to its end offset as of now (or --to-time), through "
        "the same idempotent write path as `run`: events already stored change nothing. Runs "
        "beside the live workers and never touches their group. Progress on stderr, a report "
        "per partition on stdout; exit 0 only when every partition was read to its end.",
    )
    start = replay_cmd.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-beginning", action="store_true", help="every stored message")
    start.add_argument(
        "--from-time",
        type=_moment,
        metavar="ISO",
        help="messages with a timestamp at or after, e.g. 2026-11-20T00:00:00Z",
    )
    start.add_argument(
        "--from-offsets",
        type=_offsets,
        metavar="P:O,...",
        help="per partition start offsets, e.g. 0:120,1:98 (other partitions are skipped)",
    )
    replay_cmd.add_argument(
        "--to-time", type=_moment, metavar="ISO", help="stop before messages from then on"
    )
    replay_cmd.add_argument("--topic", help="the topic to read (default ROI_TOPIC)")
    replay_cmd.add_argument(
        "--group",
        help="the group its positions are stored under (default roi-backfill-<UTC time>-<hex>; "
        "never ROI_GROUP_ID)",
    )
    replay_cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and count what would be inserted; write nothing",
    )
    replay_cmd.add_argument(
        "--dead-letter",
        action="store_true",
        help="also publish invalid events to the dead-letter topic (for a topic the live "
        "workers never read)",
    )
    replay_cmd.set_defaults(handler=_replay)

    retention_cmd = commands.add_parser(
        "retention",
        help="delete raw executions older than a horizon; summaries stay exact; prints the "
        "plan, applies with --execute",
        description="Deletes the raw executions from before 00:00 UTC of the day --older-than "
        "days ago, in chunks, keeping their aggregates so every summary (and verify) stays "
        "exact; records the horizon, so events older than it that arrive later are counted "
        "as expired and not stored. Without --execute it only prints the plan.",
    )
    retention_cmd.add_argument(
        "--older-than",
        type=_days,
        required=True,
        metavar="Nd",
        help="age in days, e.g. 90d",
    )
    add_execute_argument(retention_cmd, "delete the executions and record the horizon")
    retention_cmd.set_defaults(handler=_retention)


def _moment(text: str) -> datetime:
    from ..ops.offsets import parse_moment

    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _offsets(text: str) -> dict[int, int]:
    offsets: dict[int, int] = {}
    for part in text.split(","):
        match = _OFFSETS.match(part)
        if not match:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} is not PARTITION:OFFSET (e.g. 0:120,1:98)"
            )
        partition, offset = int(match[1]), int(match[2])
        if partition in offsets:
            raise argparse.ArgumentTypeError(f"partition {partition} is given twice")
        offsets[partition] = offset
    return offsets


def _days(text: str) -> int:
    match = _DAYS.match(text.strip())
    if not match or int(match[1]) > MAX_DAYS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of days from 1d to {MAX_DAYS}d, such as 90d"
        )
    return int(match[1])


def _replay(args: argparse.Namespace) -> int:
    from ..kafka.topic_range import open_consumer
    from ..ops.replay import Replay, choose_group, plan_replay
    from ..process import configure_command_logging, tune_for_throughput
    from ..settings import load_settings

    settings = load_settings()
    configure_command_logging(settings.log_level, settings.log_format)
    tune_for_throughput()
    topic: str = args.topic or settings.topic
    now = datetime.now(UTC)
    group = choose_group(settings, args.group, now)
    if args.to_time is not None and args.to_time > now:
        raise ConfigurationError("--to-time is in the future: the end offsets are those of now")
    if args.to_time is not None and args.from_time is not None and args.from_time >= args.to_time:
        raise ConfigurationError("--from-time must be before --to-time")
    start: Start = "beginning" if args.from_beginning else args.from_time or args.from_offsets
    consumer = open_consumer(settings, "roi-worker-replay", **settings.consumer_fetch_config())
    try:
        plan = plan_replay(consumer, topic, start, args.to_time)
        mode = "dry run: nothing is written" if args.dry_run else f"group {group}"
        print(
            f"replaying {plan.total:,} messages of {topic} into "
            f"{settings.redacted_database_url} ({mode})",
            file=sys.stderr,
        )
        progress = Progress("replay", plan.total)
        replay = Replay(
            settings,
            plan,
            group,
            dry_run=args.dry_run,
            dead_letters=args.dead_letter,
            progress=progress.update,
        )
        stop = threading.Event()
        try:
            with _stopped_by_sigterm(stop):
                replay.run(consumer, stop)
        except BaseException:  # Ctrl-C or a failure: what was done, and how to go on
            progress.finish()
            print(_report(plan, args.dry_run, group))
            print(_resume_hint(plan, args, topic, group), file=sys.stderr)
            raise
        progress.finish()
    finally:
        consumer.close()
    print(_report(plan, args.dry_run, group))
    if all(p.done for p in plan.partitions):
        return EXIT_OK
    print(_resume_hint(plan, args, topic, group), file=sys.stderr)
    return EXIT_FAILED


@contextlib.contextmanager
def _stopped_by_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM ends the replay after the batch in hand, with its report and resume hint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(plan: Plan, dry_run: bool, group: str) -> str:
    rows = [_row(p) for p in plan.partitions]
    total = {name: sum(getattr(p, name) for p in plan.partitions) for name in COLUMNS[3:-1]}
    total_row = ["total", "", "", *(f"{count:,}" for count in total.values())]
    complete = all(p.done for p in plan.partitions)
    total_row.append("complete" if complete else "INCOMPLETE")
    lines = table(COLUMNS, [*rows, total_row], ">" * len(COLUMNS))
    verb = "would insert" if dry_run else "inserted"
    summary = (
        f"{'dry run: ' if dry_run else ''}read {total['read']:,} messages, {verb} "
        f"{total['inserted']:,} events, {total['duplicates']:,} already stored, "
        f"{total['invalid']:,} invalid, {total['conflicts']:,} conflicting, "
        f"{total['refused']:,} refused, {total['expired']:,} expired"
    )
    read = any(p.read for p in plan.partitions)
    where = f"; positions stored under group {group}" if read and not dry_run else ""
    return "\n".join([*lines, "", summary + where])


def _row(p: PartitionReport) -> list[str]:
    status = "done" if p.done else f"stopped at {p.position}"
    counts = (p.read, p.inserted, p.duplicates, p.invalid, p.conflicts, p.refused, p.expired)
    return [str(p.partition), str(p.start), str(p.end), *(f"{c:,}" for c in counts), status]


def _resume_hint(plan: Plan, args: argparse.Namespace, topic: str, group: str) -> str:
    """The command that replays what is left, with the options of this one."""
    left: Mapping[int, int] = {p.partition: p.position for p in plan.partitions if not p.done}
    offsets = ",".join(f"{p}:{o}" for p, o in left.items())
    command = ["roi-worker replay", f"--topic {topic}", f"--group {group}"]
    command.append(f"--from-offsets {offsets}")
    if args.to_time is not None:
        moment = args.to_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        command.append(f"--to-time {moment}")
    command += [
        flag
        for flag, given in (("--dry-run", args.dry_run), ("--dead-letter", args.dead_letter))
        if given
    ]
    return f"not every partition was read to its end; to continue: {' '.join(command)}"


def _retention(args: argparse.Namespace) -> int:
    from ..db.connect import connect
    from ..ops.retention import apply_retention, current_horizon, horizon_for
    from ..settings import load_settings

    settings = load_settings()
    horizon = horizon_for(args.older_than, datetime.now(UTC).date())
    with connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        recorded = current_horizon(conn)
        if recorded is not None and recorded > horizon:
            print(f"the recorded horizon {recorded:%Y-%m-%d %H:%M} UTC is later and stays")
        result = apply_retention(
            conn,
            horizon,
            dry_run=plans_only(args),
            progress=lambda deleted: print(f"deleted {deleted:,} ...", file=sys.stderr),
        )
    when = f"{result.horizon.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if result.dry_run:
        print(
            f"plan: would delete {result.deleted:,} raw executions from before {when}; "
            "nothing changed: add --execute to apply"
        )
    else:
        print(
            f"deleted {result.deleted:,} raw executions from before {when}; the summaries "
            "still count them, and later events from before then will be expired"
        )
    return EXIT_OK
