"""worker/kafka/ is the one door to Kafka: no other module of the package imports kafka-python,
and inside it only worker/kafka/client.py constructs a client, from the settings.

So every consumer, producer and admin client gets the connection and security settings (and a
consumer reads committed events only), and TopicPartition, KafkaError and the like never reach
the rest of the package, which sees worker.types and worker.errors.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKER = Path(__file__).parents[3] / "worker"
DOOR = WORKER / "kafka"
CLIENTS = frozenset({"KafkaConsumer", "KafkaProducer", "KafkaAdminClient"})


def kafka_imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of kafka-python in `source`: `import kafka...`,
    `from kafka... import`, and importlib.import_module / __import__ of a literal name,
    wherever they are (module level, functions, TYPE_CHECKING blocks)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif isinstance(node, ast.Call) and _called(node) in {"import_module", "__import__"}:
            first = node.args[0] if node.args else None
            literal = first.value if isinstance(first, ast.Constant) else None
            names = [literal] if isinstance(literal, str) else []
        else:
            continue
        for name in names:
            if name == "kafka" or name.startswith("kafka."):
                yield node.lineno, name


def client_constructions(source: str) -> Iterator[tuple[int, str]]:
    """(line, class) of every call of a kafka-python client class by name."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _called(node) in CLIENTS:
            yield node.lineno, _called(node)


def _called(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def modules(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_no_module_outside_worker_kafka_imports_kafka_python() -> None:
    """Every import of kafka-python in worker/ is under worker/kafka/."""
    found = [
        f"{path.relative_to(WORKER.parent).as_posix()}:{line}: {name}"
        for path in modules(WORKER)
        if DOOR not in path.parents
        for line, name in kafka_imports(path.read_text())
    ]
    assert found == [], "import kafka-python only in worker/kafka/:\n" + "\n".join(found)


def test_only_the_builders_construct_kafka_clients() -> None:
    """Inside worker/kafka/ only client.py (new_consumer, new_producer, new_admin and the
    reader's probe) calls KafkaConsumer, KafkaProducer or KafkaAdminClient, so none can be made
    without the settings' security options, or a consumer that reads uncommitted events."""
    found = [
        f"{path.relative_to(WORKER.parent).as_posix()}:{line}: {name}"
        for path in modules(WORKER)
        if path != DOOR / "client.py"
        for line, name in client_constructions(path.read_text())
    ]
    assert found == [], "make Kafka clients with worker.kafka.client:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import kafka", ["kafka"]),
        ("import os, kafka.errors as errors", ["kafka.errors"]),
        ("from kafka import KafkaConsumer", ["kafka"]),
        ("from kafka.structs import OffsetAndMetadata", ["kafka.structs"]),
        ("def f():\n    from kafka.errors import KafkaError", ["kafka.errors"]),
        ("if TYPE_CHECKING:\n    from kafka import TopicPartition", ["kafka"]),
        ("importlib.import_module('kafka.admin')", ["kafka.admin"]),
        ("__import__('kafka')", ["kafka"]),
        ("from worker import kafka", []),
        ("from worker.kafka.client import new_consumer", []),
        ("from . import kafka", []),
        ("import kafkaesque", []),
    ],
)
def test_the_check_sees_every_form_of_import(source: str, found: list[str]) -> None:
    """The check catches kafka-python however it is imported, and nothing else."""
    assert [name for _, name in kafka_imports(source)] == found


def test_the_check_sees_a_client_made_by_attribute_or_by_name() -> None:
    """kafka.KafkaProducer(...) counts as KafkaProducer(...) does."""
    source = "p = kafka.KafkaProducer()\nc = KafkaConsumer()\nx = Other()"
    assert [name for _, name in client_constructions(source)] == ["KafkaProducer", "KafkaConsumer"]
