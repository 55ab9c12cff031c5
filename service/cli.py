"""ae-serve: run the service with uvicorn, one worker (one process holds the models and queues)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from functools import partial
from pathlib import Path

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from service.app import create_app
from service.draining import DrainingServer
from service.settings import Settings

FINISH_SECONDS = 30  # after the drain: the longest wait for the requests in flight before they are cancelled


def main(argv: list[str] | None = None) -> None:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="ae-serve", description=__doc__)
    parser.add_argument("--host", default=defaults.host, help=f"default: {defaults.host} (AE_HOST)")
    parser.add_argument("--port", type=int, default=defaults.port, help=f"default: {defaults.port} (AE_PORT)")
    parser.add_argument("--store", type=Path, default=defaults.store, help=f"default: {defaults.store} (AE_STORE)")
    args = parser.parse_args(argv)
    settings = defaults.model_copy(update={"host": args.host, "port": args.port, "store": args.store})
    # The app's own loggers (loading, skipped versions, batch errors) at the configured level.
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=FINISH_SECONDS,
    )
    # SIGTERM: not ready at once, serving for drain_seconds, then stop accepting and finish (service/draining.py)
    server = DrainingServer(config, settings.drain_seconds, on_drain=partial(setattr, app.state, "draining", True))
    with contextlib.suppress(KeyboardInterrupt):  # a forced stop (Ctrl+C during the shutdown), as uvicorn.run
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
