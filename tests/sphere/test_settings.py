"""The two modes come from the environment alone; production settings pass the deploy check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'], "
    "'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], "
    "'cache': settings.CACHES['default']['BACKEND'], 'scaled': settings.SCALED, "
    "'debug': settings.DEBUG, 'secure': settings.SESSION_COOKIE_SECURE}))"
)


def run(code: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SPHERE_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    clean |= {"DJANGO_SETTINGS_MODULE": "sphere.settings", "SPHERE_VAR_DIR": str(tmp_path)}
    return subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, *code],
        env=clean | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def probe(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    result = run(["-c", PROBE], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_no_variable_means_the_embedded_mode(tmp_path: Path) -> None:
    assert probe({}, tmp_path) == {
        "db": "django.db.backends.sqlite3",
        "layer": "channels.layers.InMemoryChannelLayer",
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "scaled": False,
        "debug": False,
        "secure": True,
    }
    # Without SPHERE_SECRET_KEY a random key is generated once and kept private.
    key = tmp_path / "secret_key"
    assert len(key.read_text()) >= 50
    assert key.stat().st_mode & 0o077 == 0


def test_database_and_redis_urls_mean_the_scaled_mode(tmp_path: Path) -> None:
    settings = probe(
        {"DATABASE_URL": "postgres://u@db:5432/sphere", "REDIS_URL": "redis://r:6379/0"},
        tmp_path,
    )
    assert settings["db"] == "django.db.backends.postgresql"
    assert settings["layer"] == "channels_redis.core.RedisChannelLayer"
    assert settings["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert settings["scaled"] is True


def test_production_settings_pass_the_deploy_check(tmp_path: Path) -> None:
    env = {
        "SPHERE_SECRET_KEY": "k" * 20 + "-production-secret-" + "z" * 20,
        "SPHERE_ALLOWED_HOSTS": "chat.example.com",
    }
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode == 0, result.stderr


def test_debug_without_secure_fails_the_deploy_check(tmp_path: Path) -> None:
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        {"SPHERE_DEBUG": "1"},
        tmp_path,
    )
    assert result.returncode != 0
    assert "DEBUG" in result.stderr
