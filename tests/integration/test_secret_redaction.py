"""No secret in any output (issue 14): every `roi-worker` command, the worker's log and
endpoints, the API's answers and log, and the demo, in good and failing conditions.

Every secret is distinctive (random 8-character pieces between the characters that URLs,
conninfo strings and reprs treat specially) and every condition has its own, so that a leak says
where it came from. Each output is searched for each of its condition's secrets in every
spelling (raw, percent-encoded, quote_plus, repr- and JSON-escaped) and for each piece alone
(what an output shows of a password that libpq split at an unescaped `@`, say); a test fails
listing every (output, secret, spelling) found. /readyz must not name the database's user, host,
port or name either.

The database roles are played by tests/pg_front.py, as the admin role of `make services` may not
create roles. Commands run in-process (tests/cli_runner.py), with logging as a new process has
it; the worker, the API, the demo, and the commands that wait half a minute for a broker that
refuses them, run as processes, all started first so that their waits overlap the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final
from urllib.parse import quote, quote_plus

import pytest
from kafka import KafkaAdminClient
from psycopg.conninfo import conninfo_to_dict

from tests.api_harness import ApiProcess
from tests.cli_runner import in_process_cli
from tests.fixtures.services import Services, create_topic, delete_topics, new_database
from tests.helpers import wait_until
from tests.integration.events import sample_events
from tests.pg_front import PgFront
from tests.worker_harness import PROCESS_TIMEOUT, Stream, WorkerProcess, free_port, produce
from worker.api.app import openapi_document
from worker.cli.main import build_parser
from worker.db.migrate import load_migrations, migrate
from worker.roi.formatting import FORMATS

HOST: Final = "localhost"  # the database's host in every URL (the broker's is 127.0.0.1)
MIN_PIECE: Final = 6  # the shortest run of a secret's letters and digits searched on its own
# Every character that a URL, a conninfo string, a repr or JSON writes specially.
SPECIAL: Final = "@:/%?# \\'"
LIBPQ_RAW: Final = "?#:"  # special characters that libpq reads unescaped in a URL's password
TOKEN_SEPARATORS: Final = "._~+/=-"  # what a bearer token may hold besides letters and digits
EXCERPT: Final = 100  # characters shown before a leak
SETTLE_SECONDS: Final = 120.0  # the longest a process takes to show what it does (30 s for Kafka)
# What a condition's password is made of, by how the URL carries it (default: SPECIAL).
SHAPES: Final[dict[str, Callable[[], str]]] = {
    "plain": lambda: _piece() + _piece() + _piece(),
    "raw": lambda: shaped(LIBPQ_RAW),
    "with an unescaped @": lambda: shaped("@"),
    "with a bad percent-encoding": lambda: f"{_piece()}%zz{_piece()}",
}
# How a database URL may carry the password, each read by libpq as meant ...
GOOD_FORMS: Final = ("percent-encoded", "plain", "raw", "in the query", "with an empty user")
STATES: Final = ("good", "wrong password", "unreachable", "no database")
# ... and what libpq, or the settings, cannot read as meant: each fails whatever the password.
BAD_FORMS: Final = (
    "with an unescaped @",
    "with unescaped special characters",
    "with a bad percent-encoding",
    "as key=value conninfo",
)
# Kafka security the broker (PLAINTEXT only) refuses; with PLAINTEXT the SASL settings are set
# too, unused by the protocol but handed to kafka-python.
KAFKA_REFUSED: Final = ("SASL_PLAINTEXT PLAIN", "SASL_PLAINTEXT SCRAM-SHA-512", "SSL")

# Arguments of the commands, each list one run; {dir} is the condition's own directory. A
# command not named here runs without arguments (and fails the test if it needs some); `schema
# --write` is left out: it reads no setting, and it takes seconds.
INVOCATIONS: Final[dict[tuple[str, ...], list[list[str]]]] = {
    ("migrate",): [[], ["--status"]],
    ("check-events",): [["{events}"]],
    ("report",): [
        [],
        *(["--format", name] for name in FORMATS),
        ["--pattern-id", "pattern-0"],
        ["--top-performers"],
        ["--underperformers"],
        ["--since", "7d"],
        ["--report", "--output", "{dir}/report.md"],
    ],
    ("dlq", "redrive"): [["--dry-run"], ["--to-topic", "{redrive_topic}"]],
    ("offsets", "show"): [[], ["--format", "json"]],
    ("offsets", "reset"): [["--to-earliest"], ["--to-earliest", "--execute"]],
    ("offsets", "prune"): [["--older-than", "30d"], ["--older-than", "30d", "--execute"]],
    ("replay",): [["--from-beginning", "--dry-run"], ["--from-beginning"]],
    ("retention",): [["--older-than", "36500d", "--dry-run"], ["--older-than", "36500d"]],
}
# Long-running: the tests of the worker and the API, and the demo scenarios, run them.
PROCESSES: Final = {("run",), ("api",), ("demo",)}
# Commands that wait half a minute for a broker that refuses them: processes then.
KAFKA_COMMANDS: Final = {
    ("offsets", "show"),
    ("offsets", "reset"),
    ("replay",),
    ("dlq", "inspect"),
    ("dlq", "redrive"),
}
# Commands that retry for half a minute against a database that refuses them: processes then.
RETRYING: Final = {("replay",)}
# Exit codes in good conditions other than 0: check-events's input has an invalid event.
GOOD_EXIT: Final[dict[tuple[str, ...], int]] = {("check-events",): 1}


# --------------------------------------------------------------------------- secrets and search

_RANDOM = random.SystemRandom()


def _piece() -> str:
    """8 random letters and digits: no output has them by chance."""
    middle = "".join(_RANDOM.choices(string.ascii_letters + string.digits, k=6))
    return _RANDOM.choice(string.ascii_uppercase) + middle + _RANDOM.choice(string.digits)


def shaped(separators: str) -> str:
    """Pieces joined by each of `separators` in turn, e.g. `Ab3dE5g1@Hj7kL0m2:...`."""
    return _piece() + "".join(separator + _piece() for separator in separators)


@dataclass(frozen=True)
class Secret:
    label: str
    value: str

    def spellings(self) -> dict[str, str]:
        """Each way an output may write the whole value, by name."""
        value = self.value
        forms = {
            "raw": value,
            "percent-encoded": quote(value, safe=""),
            "percent-encoded but /": quote(value),
            "quote_plus": quote_plus(value),
            "repr-escaped": repr(value)[1:-1],
            "JSON-escaped": json.dumps(value)[1:-1],
        }
        unique: dict[str, str] = {}
        for name, text in forms.items():
            if text not in unique.values():
                unique[name] = text
        return unique

    def pieces(self) -> dict[str, str]:
        """Its runs of MIN_PIECE letters and digits or more, named by where they are."""
        parts = re.split(r"([^A-Za-z0-9])", self.value)
        found: dict[str, str] = {}
        for index in range(0, len(parts), 2):
            if len(parts[index]) >= MIN_PIECE:
                where = f"after {parts[index - 1]!r}" if index else "at the start"
                found[f"piece {index // 2 + 1} ({where})"] = parts[index]
        return found


@dataclass(frozen=True)
class Output:
    """Something a program wrote or answered, and the secrets it was given."""

    where: str
    text: str
    secrets: tuple[Secret, ...]


def find_leaks(outputs: Iterable[Output]) -> list[str]:
    """One line per (output, secret) where the output shows the secret: the spellings found
    (or, when no whole one is, the pieces) and the line, the secret masked."""
    leaks = []
    for output in outputs:
        text = output.text.lower()
        for secret in output.secrets:
            pieces = [name for name, piece in secret.pieces().items() if piece.lower() in text]
            if not pieces:
                continue
            whole = [name for name, form in secret.spellings().items() if form.lower() in text]
            how = ", ".join(whole or pieces)
            leaks.append(f"{output.where}: {secret.label} ({how}): {_excerpt(output.text, secret)}")
    return leaks


def masked(text: str, *secrets: Secret) -> str:
    """`text` with every spelling and piece of `secrets` replaced by <SECRET>: what a failure
    message may show."""
    needles = [n for s in secrets for n in (*s.spellings().values(), *s.pieces().values())]
    for needle in sorted(needles, key=len, reverse=True):
        text = re.sub(re.escape(needle), "<SECRET>", text, flags=re.IGNORECASE)
    return text


def _excerpt(text: str, secret: Secret) -> str:
    """The line of the first leak, from up to EXCERPT characters before it, masked."""
    lowered = text.lower()
    at = min(
        (i for piece in secret.pieces().values() if (i := lowered.find(piece.lower())) >= 0),
        default=0,
    )
    start = max(text.rfind("\n", 0, at) + 1, at - EXCERPT)
    end = text.find("\n", at)
    return repr(masked(text[start : end if end >= 0 else len(text)][: 2 * EXCERPT + 60], secret))


def find_names(output: Output, names: Iterable[str]) -> list[str]:
    """One line per name (the database's user, host, ...) that the output shows."""
    shown = repr(masked(output.text.strip()[:300], *output.secrets))
    return [
        f"{output.where} names {name!r}: {shown}"
        for name in names
        if name.lower() in output.text.lower()
    ]


def test_the_search_finds_every_spelling_and_piece_of_a_planted_secret() -> None:
    """The search reports a secret written raw, encoded or escaped, or in part, with the line
    masked, and nothing in text without it: so that the other tests can fail."""
    secret = Secret("planted", shaped(SPECIAL))
    for name, spelling in secret.spellings().items():
        leaks = find_leaks([Output("out", f"one\nurl=x{spelling}y\ntwo", (secret,))])
        assert len(leaks) == 1, (name, leaks)
        assert f"({name}" in leaks[0], leaks
        assert "'url=x<SECRET>y'" in leaks[0], leaks
    tail = secret.value.split("@", 1)[1]
    leaks = find_leaks([Output("host", f'cannot resolve "{tail}@{HOST}"', (secret,))])
    assert len(leaks) == 1, leaks
    assert "(piece 2 (after '@'), piece 3 (after ':')" in leaks[0], leaks
    assert find_leaks([Output("clean", f"postgresql://u:***@{HOST}/db\n" * 50, (secret,))]) == []
    assert find_names(Output("/readyz", "no database at LocalHost", ()), [HOST]) != []


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """An environment for `roi-worker`: its ROI_* variables (and PGUSER), its secrets, and
    what it names of the database."""

    name: str
    env: dict[str, str]
    secrets: tuple[Secret, ...]
    database_names: tuple[str, ...]  # user, host, port and database name, as given
    database_ok: bool  # PostgreSQL accepts these settings
    kafka_ok: bool  # the broker accepts these settings
    directory: Path

    def with_secrets(self, **env: Secret | str) -> Condition:
        """This condition with more variables, those given as a Secret among its secrets
        (variables named TEST_* are the test's: no process is given them)."""
        values = {k: v.value if isinstance(v, Secret) else v for k, v in env.items()}
        added = tuple(v for v in env.values() if isinstance(v, Secret))
        return replace(self, env={**self.env, **values}, secrets=(*self.secrets, *added))

    def process_env(self) -> dict[str, str]:
        """What a process of this condition is given: its ROI_* variables and PGUSER."""
        return {k: v for k, v in self.env.items() if not k.startswith("TEST_")}

    def stream(self) -> Stream:
        env = self.env
        return Stream(
            env["ROI_KAFKA_BOOTSTRAP_SERVERS"],
            env["ROI_TOPIC"],
            env["ROI_DLQ_TOPIC"],
            env["ROI_GROUP_ID"],
            env["ROI_DATABASE_URL"],
        )


@dataclass
class Site:
    """The module's topics, migrated database and PostgreSQL front; a maker of conditions."""

    services: Services
    topic: str
    dlq_topic: str
    redrive_topic: str
    database: str
    front: PgFront
    root: Path
    events_file: Path
    created_topics: list[str]

    def condition(
        self,
        name: str,
        form: str = "percent-encoded",
        state: str = "good",
        *,
        front: PgFront | None = None,
        kafka: str = "PLAINTEXT",
        log_level: str | None = "DEBUG",
    ) -> Condition:
        """A new role, with a new password, for a condition of its own. `form`: how the
        database URL carries the password; `state`: one of STATES; `kafka`: PLAINTEXT or one
        of KAFKA_REFUSED; `log_level` None: the default."""
        front = front or self.front
        role = f"roi_secret_{uuid.uuid4().hex[:10]}"
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        directory = self.root / f"{slug}-{uuid.uuid4().hex[:4]}"
        directory.mkdir()
        port = front.port if state != "unreachable" else free_port()
        database = self.database if state != "no database" else f"roi_missing_{slug[-20:]}"
        url, extra, secrets = _database_url(form, role, port, database)
        front.passwords[role] = secrets[0].value
        if state == "wrong password":
            url, extra, secrets = _database_url(form, role, port, database)
            secrets = (replace(secrets[0], label="wrong database password"), *secrets[1:])
        sasl = Secret("Kafka SASL password", shaped(SPECIAL))
        env = {
            "ROI_DATABASE_URL": url,
            "ROI_KAFKA_BOOTSTRAP_SERVERS": self.services.kafka_bootstrap_servers,
            "ROI_TOPIC": self.topic,
            "ROI_DLQ_TOPIC": self.dlq_topic,
            "ROI_GROUP_ID": f"secrets-{slug[-40:]}-{uuid.uuid4().hex[:6]}",
            "ROI_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "ROI_KAFKA_SASL_USERNAME": "roi-secrets",
            "ROI_KAFKA_SASL_PASSWORD": sasl.value,
            **extra,
        }
        secrets = (*secrets, sasl)
        if log_level is not None:
            env["ROI_LOG_LEVEL"] = log_level
        if kafka.startswith("SASL_PLAINTEXT"):
            env["ROI_KAFKA_SECURITY_PROTOCOL"], env["ROI_KAFKA_SASL_MECHANISM"] = kafka.split()
        elif kafka == "SSL":
            key_password = Secret("Kafka TLS key password", shaped(SPECIAL))
            cert, key = _encrypted_key(directory, key_password.value)
            env |= {
                "ROI_KAFKA_SECURITY_PROTOCOL": "SSL",
                "ROI_KAFKA_SSL_CAFILE": str(cert),
                "ROI_KAFKA_SSL_CERTFILE": str(cert),
                "ROI_KAFKA_SSL_KEYFILE": str(key),
                "ROI_KAFKA_SSL_PASSWORD": key_password.value,
            }
            secrets = (*secrets, key_password)
        return Condition(
            name=name,
            env=env,
            secrets=secrets,
            database_names=(role, HOST, str(port), database),
            database_ok=state == "good" and form in GOOD_FORMS,
            kafka_ok=kafka == "PLAINTEXT",
            directory=directory,
        )

    def url_condition(
        self,
        form: str,
        state: str,
        *,
        front: PgFront | None = None,
        log_level: str | None = "DEBUG",
    ) -> Condition:
        name = f"database URL {form}" + (f", {state}" if form in GOOD_FORMS else "")
        return self.condition(name, form, state, front=front, log_level=log_level)


def _database_url(
    form: str, role: str, port: int, database: str
) -> tuple[str, dict[str, str], tuple[Secret, ...]]:
    """(ROI_DATABASE_URL, other variables, the secrets in them: the password first), with a
    new password."""
    password = SHAPES.get(form, lambda: shaped(SPECIAL))()
    secrets = [Secret("database password", password)]
    encoded = quote(password, safe="")
    where = f"{HOST}:{port}/{database}"
    extra: dict[str, str] = {}
    if form == "percent-encoded":
        url = f"postgresql://{role}:{encoded}@{where}"
    elif form == "with an empty user":
        url = f"postgresql://:{encoded}@{where}"
        extra["PGUSER"] = role
    elif form == "in the query":
        ssl = Secret("database sslpassword", shaped(SPECIAL))
        secrets.append(ssl)
        query = f"connect_timeout=10&password={encoded}&sslpassword={quote(ssl.value, safe='')}"
        url = f"postgresql://{role}@{where}?{query}"
    elif form == "as key=value conninfo":
        escaped = password.replace("\\", "\\\\").replace("'", "\\'")
        url = f"host={HOST} port={port} user={role} password='{escaped}' dbname={database}"
    else:  # the password as it is
        url = f"postgresql://{role}:{password}@{where}"
    return url, extra, tuple(secrets)


def _encrypted_key(directory: Path, password: str) -> tuple[Path, Path]:
    """A throwaway self-signed certificate and its key, encrypted with `password`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a TLS key for the Kafka SSL settings")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=roi-secrets",
            "-passout",
            "env:ROI_TEST_KEY_PASSWORD",
        ],
        env={**os.environ, "ROI_TEST_KEY_PASSWORD": password},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def site(
    services: Services, kafka_admin: KafkaAdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A topic with valid and invalid events, its dead-letter topic with letters, a migrated
    database that stores the events, and the front of the conditions' roles."""
    root = tmp_path_factory.mktemp("secrets")
    topics = [
        create_topic(kafka_admin, "secrets", 3),
        create_topic(kafka_admin, "secrets-dlq", 1),
        create_topic(kafka_admin, "secrets-redrive", 1),
    ]
    events = sample_events(30)
    invalid = [b"not json", b'{"schema_version": 1, "event_id": "x"}']
    events_file = root / "events.jsonl"
    events_file.write_bytes(events[0].value + b"\n" + invalid[1] + b"\n")
    created: list[str] = []  # by the demo
    try:
        with new_database(services, "secrets") as url:
            migrate(url, load_migrations())
            produce(services.kafka_bootstrap_servers, topics[0], [e.message for e in events])
            produce(services.kafka_bootstrap_servers, topics[0], invalid)
            # Stored and dead-lettered as an operator would, so that every command has
            # something to show.
            clean = {k: v for k, v in os.environ.items() if not k.startswith("ROI_")}
            subprocess.run(
                [sys.executable, "-m", "worker", "replay", "--from-beginning", "--dead-letter"],
                env={
                    **clean,
                    "ROI_DATABASE_URL": url,
                    "ROI_KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap_servers,
                    "ROI_TOPIC": topics[0],
                    "ROI_DLQ_TOPIC": topics[1],
                },
                check=True,
                capture_output=True,
                timeout=PROCESS_TIMEOUT,
            )
            with contextlib.closing(PgFront(services.database_url, {})) as front:
                yield Site(
                    services,
                    topic=topics[0],
                    dlq_topic=topics[1],
                    redrive_topic=topics[2],
                    database=str(conninfo_to_dict(url)["dbname"]),
                    front=front,
                    root=root,
                    events_file=events_file,
                    created_topics=created,
                )
    finally:
        delete_topics(kafka_admin, *topics, *created)


# --------------------------------------------------------------------------- processes


@dataclass
class Seen:
    """What one process scenario showed, and what went otherwise than the scenario needs."""

    outputs: list[Output] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    probes: list[tuple[Output, tuple[str, ...]]] = field(default_factory=list)  # with names


@dataclass
class Runs:
    """Every process scenario, started together; the futures give what each showed."""

    commands: list[Future[Seen]] = field(default_factory=list)
    workers: list[Future[Seen]] = field(default_factory=list)
    apis: list[Future[Seen]] = field(default_factory=list)


def _seen(futures: Iterable[Future[Seen]]) -> Seen:
    total = Seen()
    for future in futures:
        seen = future.result(timeout=2 * SETTLE_SECONDS)
        total.outputs += seen.outputs
        total.problems += seen.problems
        total.probes += seen.probes
    return total


@pytest.fixture(scope="module")
def conditions(site: Site) -> list[Condition]:
    """The conditions of the commands: every URL form in every state, the forms that always
    fail, the default log level and each Kafka security the broker refuses. The first runs
    every invocation."""
    return [
        *(site.url_condition(form, state) for form in GOOD_FORMS for state in STATES),
        *(site.url_condition(form, "good") for form in BAD_FORMS),
        site.condition("the default log level", log_level=None),
        *(site.condition(f"Kafka {kafka}", kafka=kafka) for kafka in KAFKA_REFUSED),
    ]


def _slow(condition: Condition, leaf: tuple[str, ...]) -> bool:
    """Whether the command waits half a minute in this condition: a process of `runs`."""
    return (not condition.kafka_ok and leaf in KAFKA_COMMANDS) or (
        not condition.database_ok and leaf in RETRYING
    )


@pytest.fixture(scope="module")
def runs(site: Site, conditions: list[Condition]) -> Iterator[Runs]:
    """Starts every process first (they take os.environ as they start, and the in-process
    commands change it later), then watches each from a thread of its own."""
    started = Runs()
    closers: list[Callable[[], None]] = []
    pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="secrets")
    try:
        for condition in conditions:
            for leaf in _leaves(build_parser()):
                if _slow(condition, leaf):
                    command = _Command([*leaf, *_arguments(leaf, site, condition)[0]], condition)
                    closers.append(command.close)
                    started.commands.append(pool.submit(_finish, command, condition, leaf))
        for watch in _demos(site, closers):
            started.commands.append(pool.submit(watch))
        for watch in _workers(site, closers):
            started.workers.append(pool.submit(watch))
        for watch in _apis(site, closers):
            started.apis.append(pool.submit(watch))
        yield started
    finally:
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        pool.shutdown(wait=True, cancel_futures=True)


def _environment(condition: Condition) -> dict[str, str]:
    """A process's whole environment: this one's without ROI_* and PGUSER, plus the
    condition's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROI_") and k != "PGUSER"}
    return {**clean, **condition.process_env()}


class _Command:
    """`roi-worker ARGS` as a process in the condition's directory, its output in a file."""

    def __init__(self, args: list[str], condition: Condition) -> None:
        self.args = args
        self.log = condition.directory / f"{'-'.join(a for a in args if a.isalpha())}.log"
        self._file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            env=_environment(condition),
            cwd=condition.directory,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._file.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._file.close()


def _finish(command: _Command, condition: Condition, leaf: tuple[str, ...]) -> Seen:
    """Waits for the command to fail. One that retries against a database that refuses it
    gets SIGTERM once it says so, as an operator would stop it (it ends at once, with its
    report and how to resume; else it would retry for half a minute)."""
    if not condition.database_ok and leaf in RETRYING:
        wait_until(
            lambda: command.process.poll() is not None or "retrying" in command.output(),
            timeout=SETTLE_SECONDS,
            what=f"{' '.join(command.args)} to fail ({command.log})",
        )
        if command.process.poll() is None:
            command.process.send_signal(signal.SIGTERM)
    code = command.wait(SETTLE_SECONDS)
    where = f"roi-worker {' '.join(command.args)} [{condition.name}] (exit {code})"
    seen = Seen([Output(where, command.output(), condition.secrets)])
    if code == 0:
        seen.problems.append(f"{where}: the condition did not make it fail")
    return seen


def _demos(site: Site, closers: list[Callable[[], None]]) -> list[Callable[[], Seen]]:
    """`roi-worker demo --seconds 0` on topics of its own: in good conditions (at the default
    log level), with its database refusing (stopped once its worker has seen that: it would
    wait a minute), and with a broker that refuses it."""
    watches: list[Callable[[], Seen]] = []
    for condition in (
        site.url_condition("percent-encoded", "good", log_level=None),
        site.url_condition("with an empty user", "wrong password"),
        site.condition("Kafka SASL_PLAINTEXT SCRAM-SHA-512", kafka="SASL_PLAINTEXT SCRAM-SHA-512"),
    ):
        topic = f"roi-test-secrets-demo-{uuid.uuid4().hex[:8]}"
        site.created_topics.extend([topic, f"{topic}.dlq"])
        metrics_port = free_port()
        demo = condition.with_secrets(
            ROI_TOPIC=topic,
            ROI_DLQ_TOPIC=f"{topic}.dlq",
            ROI_METRICS_PORT=str(metrics_port),
            ROI_API_PORT=str(free_port()),
            ROI_API_WRITE_TOKENS=Secret("API write token", shaped(TOKEN_SEPARATORS)),
        )
        command = _Command(["demo", "--seconds", "0"], demo)
        closers.append(command.close)
        watches.append(functools.partial(_watch_demo, command, demo, metrics_port))
    return watches


def _watch_demo(command: _Command, condition: Condition, metrics_port: int) -> Seen:
    if not condition.database_ok:
        loop_failed = _LoopFailed(metrics_port)
        wait_until(
            lambda: command.process.poll() is not None or loop_failed(),
            timeout=SETTLE_SECONDS,
            what=f"the demo's worker to fail to reach its database ({command.log})",
        )
        if command.process.poll() is None:
            command.process.send_signal(signal.SIGTERM)  # Ctrl-C, as an operator would
    code = command.wait(SETTLE_SECONDS)
    where = f"roi-worker demo [{condition.name}] (exit {code})"
    seen = Seen([Output(where, command.output(), condition.secrets)])
    for log in sorted((condition.directory / ".local").glob("*.log")):
        text = log.read_text(errors="replace")
        seen.outputs.append(
            Output(f"demo's {log.name} [{condition.name}]", text, condition.secrets)
        )
    if condition.database_ok and condition.kafka_ok and code != 0:
        tail = masked(seen.outputs[0].text[-500:], *condition.secrets)
        seen.problems.append(f"{where} in good conditions: {tail}")
    return seen


class _LoopFailed:
    """Whether the consuming loop of the worker serving /metrics on `port` has failed to
    reach its database: roi_worker_db_errors_total also counts each scrape that could not
    read the summaries, at most one per scrape, so more errors than scrapes means it has."""

    def __init__(self, port: int) -> None:
        self._url = f"http://127.0.0.1:{port}/metrics"
        self._scrapes = 0

    def __call__(self) -> bool:
        try:
            with urllib.request.urlopen(self._url, timeout=5) as answer:  # noqa: S310
                text = answer.read().decode()
        except OSError:
            return False
        self._scrapes += 1
        found = re.search(r"^roi_worker_db_errors_total (\S+)$", text, re.MULTILINE)
        return found is not None and float(found[1]) > self._scrapes


def _workers(site: Site, closers: list[Callable[[], None]]) -> list[Callable[[], Seen]]:
    """`roi-worker run` at DEBUG: ready, then with its database cut; with its database refusing
    from the start in several ways; and with a broker that refuses it."""
    cut = PgFront(site.services.database_url, {})
    closers.append(cut.close)
    conditions = [
        (site.url_condition("percent-encoded", "good", front=cut), cut),
        (site.url_condition("with an empty user", "wrong password"), None),
        (site.url_condition("in the query", "unreachable"), None),
        (site.url_condition("raw", "no database"), None),
        *((site.url_condition(form, "good"), None) for form in BAD_FORMS[:2]),
        *((site.condition(f"Kafka {kafka}", kafka=kafka), None) for kafka in KAFKA_REFUSED),
    ]
    watches: list[Callable[[], Seen]] = []
    for condition, front in conditions:
        log = condition.directory / "run.log"
        worker = WorkerProcess(condition.stream(), log, **condition.process_env())
        closers.append(worker.close)
        watches.append(functools.partial(_watch_worker, worker, condition, front))
    return watches


def _watch_worker(worker: WorkerProcess, condition: Condition, cut: PgFront | None) -> Seen:
    """Waits until the worker is ready, has failed to reach its database, or has exited;
    reads its endpoints; cuts its database (`cut`) and reads them again; stops it."""
    good = condition.database_ok and condition.kafka_ok
    loop_failed = _LoopFailed(worker.port)

    def settled() -> bool:
        if worker.process.poll() is not None:
            return True
        try:
            return worker.get("/readyz")[0] == 200 if good else loop_failed()
        except OSError:
            return False

    wait_until(settled, timeout=SETTLE_SECONDS, what=f"the worker to settle ({worker.log_path})")
    seen = Seen()
    if worker.process.poll() is None:
        moment = "while ready" if good else "with the database refusing"
        _read_worker(worker, condition, moment, seen)
        if cut is not None:
            cut.cut()
            wait_until(
                lambda: worker.get("/readyz")[0] == 503,
                timeout=SETTLE_SECONDS,
                what=f"the worker to see its database gone ({worker.log_path})",
            )
            _read_worker(worker, condition, "with the database cut", seen)
    code = worker.stop()
    where = f"worker log [{condition.name}] (exit {code})"
    seen.outputs.append(Output(where, worker.log(), condition.secrets))
    if good and not seen.outputs[:-1]:
        seen.problems.append(f"{where}: it never got ready")
    return seen


def _read_worker(worker: WorkerProcess, condition: Condition, moment: str, seen: Seen) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        status, body = worker.get(path)
        where = f"worker {path} {moment} [{condition.name}] ({status})"
        output = Output(where, body, condition.secrets)
        seen.outputs.append(output)
        if path != "/metrics":
            seen.probes.append((output, condition.database_names))


def _apis(site: Site, closers: list[Callable[[], None]]) -> list[Callable[[], Seen]]:
    """`roi-worker api` at DEBUG with write and read tokens: every endpoint with each kind of
    credential, then with its database cut; with its database refusing from the start; and
    with a broker that refuses its POST."""
    cut = PgFront(site.services.database_url, {})
    closers.append(cut.close)
    conditions = [
        (site.url_condition("percent-encoded", "good", front=cut), cut),
        (site.url_condition("with an empty user", "wrong password"), None),
        (site.url_condition("in the query", "unreachable"), None),
        *((site.url_condition(form, "good"), None) for form in BAD_FORMS[:2]),
        (
            site.condition(
                "Kafka SASL_PLAINTEXT SCRAM-SHA-512", kafka="SASL_PLAINTEXT SCRAM-SHA-512"
            ),
            None,
        ),
    ]
    watches: list[Callable[[], Seen]] = []
    for plain_condition, front in conditions:
        other = Secret("API write token (the first)", shaped(TOKEN_SEPARATORS))
        write = Secret("API write token", shaped(TOKEN_SEPARATORS))
        condition = plain_condition.with_secrets(
            ROI_API_WRITE_TOKENS=f"{other.value},{write.value}",
            TEST_OTHER_TOKEN=other,
            TEST_WRITE_TOKEN=write,
            ROI_API_READ_TOKENS=Secret("API read token", shaped(TOKEN_SEPARATORS)),
            TEST_WRONG_TOKEN=Secret("wrong API token", shaped(TOKEN_SEPARATORS)),
            ROI_API_PUBLISH_TIMEOUT_SECONDS="3",
        )
        api = ApiProcess(condition.process_env(), condition.directory / "api.log")
        closers.append(api.close)
        watches.append(functools.partial(_watch_api, api, condition, front))
    return watches


def _credentials(condition: Condition) -> dict[str, dict[str, str | None]]:
    """Authorization headers by name: each token, none, and a wrong one in three shapes."""
    env = condition.env
    wrong = env["TEST_WRONG_TOKEN"]
    return {
        "the read token": {"Authorization": f"Bearer {env['ROI_API_READ_TOKENS']}"},
        "the write token": {"Authorization": f"Bearer {env['TEST_WRITE_TOKEN']}"},
        "no token": {"Authorization": None},
        "a wrong token": {"Authorization": f"Bearer {wrong}"},
        "a token without Bearer": {"Authorization": wrong},
        "Basic credentials": {"Authorization": f"Basic {wrong}"},
    }


def _api_paths() -> list[tuple[str, str]]:
    """(method, path) of every endpoint of the OpenAPI document, pattern ids filled in."""
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "pattern-0", path))
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    ] + [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/no-such-endpoint")]


def _ask(
    api: ApiProcess, condition: Condition, seen: Seen, request: tuple[str, str], credential: str
) -> int:
    """One request; its answer (status, headers and body) among the outputs."""
    method, path = request
    body = None
    if method == "POST":
        body = sample_events(1, seed=99)[0].value if "write" in credential else b"{}"
    headers = _credentials(condition)[credential]
    status, answer, answer_headers = api.request(method, path, body, headers=headers)
    text = answer if isinstance(answer, str) else json.dumps(answer)
    where = f"api {method} {path} with {credential} [{condition.name}] ({status})"
    output = Output(where, f"{answer_headers}\n{text}", condition.secrets)
    seen.outputs.append(output)
    if path == "/readyz":
        seen.probes.append((output, condition.database_names))
    return status


def _wait_readyz(api: ApiProcess, status: int) -> None:
    wait_until(
        lambda: api.get("/readyz")[0] == status,
        timeout=SETTLE_SECONDS,
        what=f"roi-worker api's /readyz to answer {status} ({api.log_path})",
    )


def _watch_api(api: ApiProcess, condition: Condition, cut: PgFront | None) -> Seen:
    """The good API: every endpoint with every credential, then /readyz and a read with its
    database cut. The others: /readyz, reads and a POST. Then it stops."""
    seen = Seen()

    def up() -> bool:
        try:
            return api.process.poll() is not None or api.get("/healthz")[0] == 200
        except OSError:
            return False

    wait_until(up, timeout=SETTLE_SECONDS, what=f"roi-worker api to answer ({api.log_path})")
    summary = ("GET", "/api/roi-tracking/summary")
    if api.process.poll() is None and cut is not None:
        _wait_readyz(api, 200)
        for request in _api_paths():
            for credential in _credentials(condition):
                _ask(api, condition, seen, request, credential)
        if _ask(api, condition, seen, summary, "a wrong token") != 401:
            seen.problems.append(f"api [{condition.name}]: a wrong token was not refused")
        cut.cut()
        _wait_readyz(api, 503)
        _ask(api, condition, seen, ("GET", "/readyz"), "no token")
        _ask(api, condition, seen, summary, "the read token")
    elif api.process.poll() is None:
        for request in (("GET", "/readyz"), summary, ("GET", "/api/roi-tracking/report/x")):
            _ask(api, condition, seen, request, "the read token")
        _ask(api, condition, seen, ("POST", "/api/roi-tracking/executions"), "the write token")
    code = api.stop()
    seen.outputs.append(
        Output(f"api log [{condition.name}] (exit {code})", api.log(), condition.secrets)
    )
    return seen


# --------------------------------------------------------------------------- commands


def _leaves(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """Every command path of the parser: ('migrate',), ('dlq', 'inspect'), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [(name, *rest) for name, sub in action.choices.items() for rest in _leaves(sub)]
    return [()]


def _arguments(leaf: tuple[str, ...], site: Site, condition: Condition) -> list[list[str]]:
    values = {
        "dir": str(condition.directory),
        "events": str(site.events_file),
        "redrive_topic": site.redrive_topic,
    }
    return [[arg.format(**values) for arg in args] for args in INVOCATIONS.get(leaf, [[]])]


def _parses(args: list[str]) -> bool:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(args)
        except SystemExit:
            return False
    return True


def _invocations(
    leaves: list[tuple[str, ...]], site: Site, condition: Condition, *, every: bool
) -> list[tuple[tuple[str, ...], list[str]]]:
    """(command, whole argument list) of the commands that run in-process: with `every`, each
    invocation of INVOCATIONS and --help of the program and of each command, and --version;
    otherwise the first invocation of each command."""
    invocations = [
        (leaf, [*leaf, *args])
        for leaf in leaves
        if leaf not in PROCESSES
        for args in _arguments(leaf, site, condition)[: None if every else 1]
    ]
    if every:
        invocations += [((), ["--help"]), ((), ["--version"])]
        invocations += [(leaf, [*leaf, "--help"]) for leaf in leaves]
    return invocations


@contextlib.contextmanager
def _as_a_new_process() -> Iterator[None]:
    """Logging as a new process has it, for the block: no handler on the root logger, WARNING,
    and the loggers' levels restored afterwards. Under pytest the root logger has pytest's
    handlers, so a command's logging.basicConfig would do nothing and its log would go to
    pytest instead of the captured stderr; and the levels a command sets (kafka at WARNING)
    would hide the next command's DEBUG lines."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    for name in levels:  # as a new process has them: what earlier tests' commands set goes
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def _use(monkeypatch: pytest.MonkeyPatch, condition: Condition) -> None:
    """The condition's variables, and no other ROI_* (nor PGUSER)."""
    for name in [*os.environ]:
        if name.startswith("ROI_") or name == "PGUSER":
            monkeypatch.delenv(name)
    for name, value in condition.process_env().items():
        monkeypatch.setenv(name, value)


def _verdict(leaks: list[str], problems: list[str], outputs: int) -> str:
    text = f"{len(leaks)} leaks in {outputs} outputs" + "".join(f"\n  {leak}" for leak in leaks)
    if problems:
        text += "\nand conditions that did not do what they should:"
        text += "".join(f"\n  {problem}" for problem in problems)
    return text


def test_no_command_shows_a_secret(
    site: Site,
    conditions: list[Condition],
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every command of the parser, in every condition, shows none of its secrets in its
    output or in the files it writes; nor does the demo, in its output or its worker's and
    API's logs. A good condition must succeed and a refused one fail, or they prove nothing."""
    leaves = _leaves(build_parser())
    problems = [
        f"roi-worker {' '.join(leaf)} needs arguments: add them to INVOCATIONS"
        for leaf in leaves
        if leaf not in PROCESSES and leaf not in INVOCATIONS and not _parses(list(leaf))
    ]
    problems += [
        f"{' '.join(leaf)} is not a command of the parser"
        for leaf in [*INVOCATIONS, *PROCESSES, *KAFKA_COMMANDS]
        if leaf not in leaves
    ]
    run = in_process_cli(monkeypatch, capsys)
    outputs: list[Output] = []
    for number, condition in enumerate(conditions):
        _use(monkeypatch, condition)
        for leaf, args in _invocations(leaves, site, condition, every=number == 0):
            helping = "--help" in args or "--version" in args
            if _slow(condition, leaf) and not helping:
                continue  # a process of `runs`
            with _as_a_new_process():
                outcome = run(condition.env["ROI_DATABASE_URL"], *args)
            where = f"roi-worker {' '.join(args)} [{condition.name}] (exit {outcome.code})"
            outputs.append(Output(where, outcome.out + outcome.err, condition.secrets))
            expected = 0 if helping else GOOD_EXIT.get(leaf, 0)
            if condition.database_ok and outcome.code != expected:
                tail = masked(outcome.err.strip()[-300:], *condition.secrets)
                problems.append(f"{where}, not {expected}: {tail}")
            if leaf == ("verify",) and not condition.database_ok and outcome.code == 0:
                problems.append(f"{where}: the database did not refuse")
        for written in sorted(condition.directory.rglob("*")):
            if written.is_file() and written.suffix in (".md", ".json", ".csv"):
                text = written.read_text(errors="replace")
                outputs.append(Output(f"{written} [{condition.name}]", text, condition.secrets))
    if not any(" DEBUG kafka." in output.text for output in outputs):
        problems.append("the in-process commands' DEBUG log was not captured")
    seen = _seen(runs.commands)
    outputs += seen.outputs
    problems += seen.problems
    leaks = find_leaks(outputs)
    assert not leaks + problems, _verdict(leaks, problems, len(outputs))


def test_the_worker_shows_no_secret_in_its_log_or_endpoints(runs: Runs) -> None:
    """`roi-worker run` at DEBUG shows no secret in its log, /metrics, /healthz or /readyz:
    ready, with its database cut, refusing it from the start, and with a broker refusing it."""
    seen = _seen(runs.workers)
    leaks = find_leaks(seen.outputs)
    assert not leaks + seen.problems, _verdict(leaks, seen.problems, len(seen.outputs))


def test_the_api_shows_no_secret_in_its_answers_or_log(runs: Runs) -> None:
    """`roi-worker api` at DEBUG shows no secret, token or wrong token in any answer or in its
    log: every endpoint with each kind of credential, with its database cut or refusing it,
    and with a broker refusing its POST."""
    seen = _seen(runs.apis)
    leaks = find_leaks(seen.outputs)
    assert not leaks + seen.problems, _verdict(leaks, seen.problems, len(seen.outputs))


def test_readyz_names_no_database_user_host_port_or_name(runs: Runs) -> None:
    """The worker's /readyz and /healthz and the API's /readyz, served to anyone who can reach
    them, name neither the database's user, host and port nor the database."""
    probes = _seen([*runs.workers, *runs.apis]).probes
    assert len(probes) >= 10, probes
    named = [line for output, names in probes for line in find_names(output, names)]
    assert not named, "\n".join(named)
