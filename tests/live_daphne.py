"""One real daphne serving Sphere in the embedded mode, its stdout and stderr (access log and
logging output) kept in a file that a test reads back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import ROOT, free_port

TIMEOUT = 30


class Daphne:
    def __init__(self, base: str, log: Path) -> None:
        self.base = base
        self.log = log

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            self.base + path, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, found: Callable[[str], bool]) -> str:
        """The output once ``found`` holds for it (daphne writes its lines as it goes)."""
        deadline = time.monotonic() + TIMEOUT
        while not found(text := self.output()):
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.05)
        return text


@contextmanager
def daphne(var: Path, *args: str, **env: str) -> Iterator[Daphne]:
    """``daphne [args] sphere.asgi:application`` on a free loopback port, after ``migrate``
    on a fresh SQLite database of its own; ``env`` adds ``SPHERE_*`` settings."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SPHERE_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    environment |= {
        "SPHERE_VAR_DIR": str(var),
        "SPHERE_SECURE": "0",
        "SPHERE_DEBUG": "0",
        "SPHERE_SECRET_KEY": "live-daphne-test-key-" + "x" * 40,
        "DJANGO_SETTINGS_MODULE": "sphere.settings",
        **env,
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=120,
    )
    port = free_port()
    log = var / "daphne.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *args,
             "sphere.asgi:application"],
            cwd=ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Daphne(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                server.get("/healthz")
                break
            except OSError:
                assert process.poll() is None, server.output()[-2000:]
                assert time.monotonic() < deadline, server.output()[-2000:]
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
