"""``python manage.py fanout_worker``: a partition worker of the scaled mode.

Run any number of them; they share the partitions through leases. SIGTERM or SIGINT releases
this worker's leases and stops it; its partitions move to the others at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fanout.transport import current

logger = logging.getLogger("fanout.worker")


class Command(BaseCommand):
    help = "Run a fan-out partition worker (scaled mode: needs REDIS_URL and DATABASE_URL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=0,
            help="Serve Prometheus metrics on 127.0.0.1:PORT (0: off).",
        )
        parser.add_argument(
            "--metrics-host", default="127.0.0.1", help="Address for the metrics server."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if current().kind != "redis":
            raise CommandError(
                "fanout_worker runs in the scaled mode only: set REDIS_URL (and DATABASE_URL). "
                "The embedded mode fans out inside the server process."
            )
        if options["metrics_port"]:
            from prometheus_client import start_http_server

            start_http_server(options["metrics_port"], addr=options["metrics_host"])
        asyncio.run(self._run())

    async def _run(self) -> None:
        worker = current().worker()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        self.stdout.write(f"fan-out worker {worker.id}: {worker.partitions} partitions")
        self.stdout.flush()
        await worker.run()
