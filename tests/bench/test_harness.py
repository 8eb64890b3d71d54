"""The load harness's schedules and report, and a tiny run against the real servers that keeps
the harness working: it asserts that nothing is lost, duplicated or reordered, never timing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import Round, burst, steady
from bench.report import targets

ROOT = Path(__file__).resolve().parents[2]


def test_a_steady_schedule_spaces_messages_evenly_over_the_rooms() -> None:
    schedule = steady(3, rate=10, seconds=1)
    assert len(schedule) == 10
    assert [offset for offset, _ in schedule] == pytest.approx([n / 10 for n in range(10)])
    assert [room for _, room in schedule] == [n % 3 for n in range(10)]


def test_a_skewed_schedule_favours_the_first_rooms() -> None:
    schedule = steady(100, rate=1000, seconds=2, skew=1.1)
    counts = [0] * 100
    for _, room in schedule:
        counts[room] += 1
    assert counts[0] > counts[9] > counts[99]
    assert steady(100, rate=1000, seconds=2, skew=1.1) == schedule  # seeded: repeatable


def test_a_burst_is_all_at_once_into_one_room() -> None:
    assert burst(4, room=2) == [(0.0, 2)] * 4


def round_of(system: str, scenario: str, **figures: float) -> Round:
    base = {
        "rooms": 1, "members": 1000, "offered": 10.0, "sent": 100, "expected": 100_000,
        "delivered": 100_000, "seconds": 10.0, "server_cpu": 1.0, "loadgen_cpu": 1.0,
        "p50_ms": 5.0, "p99_ms": 20.0, "max_ms": 30.0, "lost": 0, "duplicated": 0,
        "disordered": 0, "idle_kib_per_connection": 10.0,
    }  # fmt: skip
    base.update(figures)
    return Round(scenario=scenario, system=system, **base)


def test_targets_are_judged_from_the_run_s_own_figures() -> None:
    rounds = [
        round_of("sphere", "room-1000", server_cpu=2.0, p99_ms=30.0),  # 50,000 per CPU-s
        round_of("tutorial", "room-1000", server_cpu=40.0),  # 2,500
        round_of("bare", "room-1000", server_cpu=1.0, p99_ms=20.0),  # 100,000
        round_of("sphere", "burst-1000", offered=0.0, delivered=499_000, lost=1000),
    ]
    verdicts = {target.split(":")[0]: verdict for target, _, verdict in targets(rounds)}
    assert verdicts["1,000 members"] == "met"  # half the bare server's, exactly
    by_text = {t: v for t, _, v in targets(rounds)}
    assert any("15" in t and v == "met" for t, v in by_text.items())  # 20 times
    assert any("p99" in t and v == "met" for t, v in by_text.items())  # 1.5 times
    assert any("burst" in t and v == "**missed**" for t, v in by_text.items())


@pytest.mark.services
@pytest.mark.timeout(300)
def test_a_tiny_run_loses_nothing_in_any_system(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPHERE_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    done = subprocess.run(  # noqa: S603 - the harness's own command
        [sys.executable, "-m", "bench", "tiny", "--out", str(tmp_path), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    rounds = json.loads(done.stdout[done.stdout.index("[") :])
    assert {r["system"] for r in rounds} == {"sphere", "tutorial", "bare"}
    for r in rounds:
        assert r["delivered"] == r["expected"] > 0, r
        assert (r["lost"], r["duplicated"], r["disordered"]) == (0, 0, 0), r
    report = (tmp_path / "RESULTS.md").read_text()
    assert "| room-5 | Sphere |" in report
    assert (tmp_path / "latency.png").stat().st_size > 0
