"""The benchmark's output: the table, the ratio table, the target checks, the machine facts,
and the section appended to docs/benchmarks.md."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import psycopg
from kafka import KafkaAdminClient

REPO: Final = Path(__file__).resolve().parents[2]
DOC: Final = REPO / "docs" / "benchmarks.md"
MB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Row:
    """One measured scenario."""

    scenario: str
    events: int
    seconds: float
    cpu_seconds: float | None = None  # of the measured process
    peak_rss_bytes: int | None = None
    notes: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def cells(self) -> list[str]:
        cpu = "-" if self.cpu_seconds is None else f"{self.cpu_seconds * 1000 / self.events:.3f}"
        rss = "-" if self.peak_rss_bytes is None else f"{self.peak_rss_bytes / MB:,.0f}"
        return [
            self.scenario,
            f"{self.events:,}",
            f"{self.seconds:,.1f}",
            f"{self.rate:,.0f}",
            cpu,
            rss,
            self.notes,
        ]


HEADER: Final = ["scenario", "events", "seconds", "events/s", "CPU s/1k", "peak RSS MB", "notes"]


def table(rows: Sequence[Row]) -> str:
    """Aligned columns; numbers right-aligned, text left-aligned."""
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    text_columns = {0, len(HEADER) - 1}

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) if i in text_columns else value.rjust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(HEADER))
    return "\n".join([line(HEADER), rule, *(line(c) for c in cells[1:])])


@dataclass(frozen=True, slots=True)
class Ratio:
    """One figure of one run over another of the same run; None when either was skipped."""

    name: str
    value: float | None
    figure: str  # what it was computed from


RATIO_HEADER: Final = ["ratio (same run)", "value", "from"]


def ratios_text(ratios: Sequence[Ratio]) -> str:
    """The RATIO table, aligned like `table`."""
    cells = [RATIO_HEADER]
    for ratio in ratios:
        value = "not measured" if ratio.value is None else f"{ratio.value:,.2f}"
        cells.append([ratio.name, value, ratio.figure])
    widths = [max(len(line[i]) for line in cells) for i in range(len(RATIO_HEADER))]

    def line(values: Sequence[str]) -> str:
        name, value, figure = values
        return f"{name.ljust(widths[0])}  {value.rjust(widths[1])}  {figure}".rstrip()

    rule = "-" * len(line(RATIO_HEADER))
    return "\n".join([line(RATIO_HEADER), rule, *(line(c) for c in cells[1:])])


@dataclass(frozen=True, slots=True)
class Check:
    target: str
    verdict: str  # "met", "MISSED" or "not measured"
    figure: str

    def line(self, width: int) -> str:
        figure = f": {self.figure}" if self.figure else ""
        return f"{self.target.ljust(width)}  {self.verdict}{figure}"


def checks_text(checks: Sequence[Check]) -> str:
    width = max(len(c.target) for c in checks)
    return "\n".join(c.line(width) for c in checks)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --------------------------------------------------------------------------- machine facts


def git_revision() -> str:
    executable = shutil.which("git")

    def git(*args: str) -> str:
        if executable is None:
            return ""
        done = subprocess.run(
            [executable, *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        revision += " + uncommitted changes"
    return revision


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)
    return 0.0


def _broker_version(bootstrap_servers: str) -> str:
    script = (REPO / "deploy" / "local" / "services.sh").read_text()
    local = re.search(r"^KAFKA_VERSION=(\S+)", script, re.MULTILINE)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="roi-bench")
        try:
            detected = ".".join(map(str, admin._client.check_version()))
        finally:
            admin.close()
    except Exception as exc:  # a fact we can live without
        detected = f"unknown ({type(exc).__name__})"
    where = f"; deploy/local/services.sh runs {local[1]}" if local else ""
    return f"{detected} (API versions, as kafka-python detects it{where})"


def _postgres(url: str) -> str:
    with psycopg.connect(url) as conn:
        version = str(conn.execute("SELECT version()").fetchone()[0])  # type: ignore[index]
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                (["shared_buffers", "synchronous_commit", "max_wal_size"],),
            ).fetchall()
        )
    short = version.split()[1]
    return f"{short} ({', '.join(f'{k} {v}' for k, v in sorted(settings.items()))})"


def machine_facts(bootstrap_servers: str, database_url: str) -> dict[str, str]:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable)",
        "RAM": f"{_memory_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "kafka-python": importlib.metadata.version("kafka-python"),
        "psycopg": importlib.metadata.version("psycopg"),
        "Kafka broker": _broker_version(bootstrap_servers),
        "PostgreSQL": _postgres(database_url),
        "load average at start": load,
    }


# --------------------------------------------------------------------------- the record


def section(
    *,
    when: datetime,
    command: str,
    facts: Mapping[str, str],
    settings: Mapping[str, Any],
    rows: Sequence[Row],
    ratios: Sequence[Ratio],
    calibration: str,
    checks: Sequence[Check],
) -> str:
    """The Markdown section one run appends to docs/benchmarks.md."""
    fact_lines = [f"- {name}: {value}" for name, value in facts.items()]
    setting_lines = [f"- {name}: {value}" for name, value in settings.items()]
    return "\n".join(
        [
            f"## Run {when:%Y-%m-%d %H:%M} UTC, {git_revision()}",
            "",
            f"`{command}`",
            "",
            *fact_lines,
            *setting_lines,
            "",
            "```text",
            table(rows),
            "",
            ratios_text(ratios),
            "",
            calibration,
            "",
            checks_text(checks),
            "```",
            "",
        ]
    )


def append(text: str, path: Path = DOC) -> None:
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    separator = "" if not existing or existing.endswith("\n\n") else "\n"
    path.write_text(existing + separator + text, encoding="utf-8")
