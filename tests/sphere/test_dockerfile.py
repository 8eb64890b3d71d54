"""The image and the compose file agree: every volume mounted into a Sphere container exists
in the image, owned by the user the container runs as.

Docker seeds an empty named volume with the ownership of the image's directory at the mount
point; where the image lacks the directory, the volume is root-owned and the unprivileged
process (``collectstatic`` writing the static volume) cannot write it. No Docker daemon is
needed: the check reads the two files.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile() -> tuple[list[list[str]], str]:
    """The RUN commands before the final USER, each split into shell words, and that user."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    runs: list[list[str]] = []
    user = "root"
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "RUN":
            runs.append(shlex.split(rest))
        elif instruction.upper() == "USER":
            user = rest.strip()
            break
    return runs, user


def _commands(runs: list[list[str]]) -> list[list[str]]:
    """Every simple command of the RUN lines (split on ``&&`` and ``;``)."""
    commands: list[list[str]] = []
    for words in runs:
        current: list[str] = []
        for word in words:
            if word in {"&&", ";", "||"}:
                commands.append(current)
                current = []
            else:
                current.append(word)
        commands.append(current)
    return [command for command in commands if command]


def _created(commands: list[list[str]]) -> set[str]:
    created: set[str] = set()
    for command in commands:
        if command[0] == "mkdir":
            for path in (word for word in command[1:] if not word.startswith("-")):
                # mkdir -p makes every parent too
                while path not in {"/", ""}:
                    created.add(path)
                    path = posixpath.dirname(path)
    return created


def _owned_by(commands: list[list[str]], user: str, path: str) -> bool:
    for command in commands:
        if command[0] != "chown":
            continue
        recursive = "-R" in command[1:]
        words = [word for word in command[1:] if not word.startswith("-")]
        owner, targets = words[0].split(":")[0], words[1:]
        if owner != user:
            continue
        for target in targets:
            if target == path or (recursive and path.startswith(target.rstrip("/") + "/")):
                return True
    return False


def _sphere_mounts() -> set[str]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts: set[str] = set()
    for service in compose["services"].values():
        if service.get("build") is None:
            continue  # PostgreSQL and Redis run their own images
        for volume in service.get("volumes", []):
            mounts.add(volume.split(":")[1])
    return mounts


def test_dockerfile_creates_each_mounted_directory_owned_by_the_runtime_user() -> None:
    runs, user = _dockerfile()
    assert user == "sphere"
    commands = _commands(runs)
    mounts = _sphere_mounts()
    assert "/app/var/static" in mounts
    created = _created(commands)
    for mount in sorted(mounts):
        assert mount in created, f"{mount} is mounted but not created in the image"
        assert _owned_by(commands, user, mount), f"{mount} is not owned by {user} in the image"
