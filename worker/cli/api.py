"""`roi-worker api`: the read API and HTTP ingestion (worker.api), until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Adds `api` to the `roi-worker` subcommands."""
    api_cmd = commands.add_parser(
        "api",
        help="serve the read API and HTTP ingestion (ROI_API_PORT, default 8000)",
        description="Serves the ROI tracking endpoints, usage statistics and event ingestion "
        "over HTTP, with the OpenAPI schema at /openapi.json and /docs (docs/api.md). Reads "
        "PostgreSQL (ROI_DATABASE_URL); POST publishes to ROI_TOPIC. SIGTERM or Ctrl-C stops it.",
    )
    api_cmd.add_argument(
        "--host", default=None, help="address to listen on (default ROI_API_HOST, 0.0.0.0)"
    )
    api_cmd.add_argument(
        "--port",
        type=_port,
        default=None,
        metavar="N",
        help="port to listen on (default ROI_API_PORT, 8000)",
    )
    api_cmd.set_defaults(handler=_api)


def _port(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, not {text!r}")
    return value


def _api(args: argparse.Namespace) -> int:
    from ..api.server import serve
    from ..process import configure_logging
    from ..settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return serve(settings, args.host or settings.api_host, args.port or settings.api_port)
