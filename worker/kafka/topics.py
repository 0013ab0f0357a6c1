"""The topics the worker needs: checked at start-up, created only when asked to."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ..errors import BrokerUnavailableError, ConfigurationError
from ..settings import KafkaSettings
from .client import new_admin

log = logging.getLogger(__name__)

ADMIN_TIMEOUT_MS = 15000


def ensure_topics(settings: KafkaSettings, topics: Sequence[str], *, create: bool) -> None:
    """Raises ConfigurationError naming each missing topic, unless `create` makes them.

    Created topics take the broker's default partition count and replication factor.
    """
    admin = new_admin(settings, request_timeout_ms=ADMIN_TIMEOUT_MS)
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in topics if topic not in existing]
        if missing and not create:
            raise ConfigurationError(
                f"topic {', '.join(missing)} does not exist on {settings.kafka_bootstrap_servers}"
                "; create it (docs/operations.md) or set ROI_CREATE_TOPICS=true"
            )
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic)], timeout_ms=ADMIN_TIMEOUT_MS)
                log.info("created topic %s", topic)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka: cannot check the topics: {exc}") from exc
    finally:
        admin.close()
