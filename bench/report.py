"""``docs/bench/RESULTS.md``, ``results.json`` and the plots, from a run's rounds.

Every figure in the report comes from the rounds of the same run; the targets are checked
against them, and a missed target says so.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from bench.harness import LATE_MS, Round
from bench.stats import highest_kept_up

LABELS = {
    "sphere": "Sphere",
    "sphere-embedded": "Sphere (embedded)",
    "tutorial": "Channels tutorial",
    "bare": "bare websockets",
}
IDLE_LIMIT_MS = 2.0  # CPU per second per process at rest
SPHERE_OWN = {"gateway", "worker", "server"}  # the processes Sphere runs (not Redis, PostgreSQL)
SHARED = {"postgres", "redis"}  # services the machine's other users share
PACKAGES = ["django", "channels", "channels-redis", "daphne", "websockets", "picows", "redis"]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = next(
            int(line.split()[1]) // (1024 * 1024)
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration, ValueError):
        memory = 0
    return (
        f"{model}, {os.cpu_count()} cores, {memory} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def versions() -> str:
    parts = []
    for name in PACKAGES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    for name, argv in (("Redis", ["redis-server", "--version"]), ("PostgreSQL", ["psql", "-V"])):
        try:
            out = subprocess.run(  # noqa: S603 - fixed commands
                argv, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            continue
        words = [w.removeprefix("v=") for w in out.stdout.split()]
        number = next((w for w in words if w[:1].isdigit()), "?")
        parts.append(f"{name} server {number}" if name == "Redis" else f"{name} {number}")
    return ", ".join(parts)


def _f(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(a: float, b: float) -> str:
    if not a or not b or math.isnan(a) or math.isnan(b):
        return "–"
    return f"{a / b:,.2f}×"


def find(rounds: Iterable[Round], scenario: str, system: str) -> Round | None:
    found = [r for r in rounds if r.scenario == scenario and r.system == system]
    return found[-1] if found else None


def is_ingest(r: Round) -> bool:
    return r.scenario.startswith("ingest-")


def is_idle(r: Round) -> bool:
    return r.scenario.startswith("idle-")


def is_dm(r: Round) -> bool:
    return r.scenario.startswith("dm-")


def steps_of(rounds: Iterable[Round], scenario: str, system: str) -> list[Round]:
    return sorted(
        (r for r in rounds if r.scenario == scenario and r.system == system),
        key=lambda r: r.offered,
    )


def best_rate(steps: list[Round]) -> float | None:
    """The highest offered rate kept up of one system's steps (``Round.delivered_in_time``)."""
    return highest_kept_up((r.offered, r.delivered_in_time) for r in steps)


def at_rate(steps: list[Round], rate: float) -> Round | None:
    return next((r for r in steps if r.offered == rate), None)


def per_message_split(r: Round) -> str:
    """Server CPU per message by process role, in ms."""
    split = r.notes.get("server_cpu_by_process", {})
    if not r.sent or not split:
        return "–"
    parts = sorted(split.items(), key=lambda item: -item[1])
    return ", ".join(f"{role} {cpu * 1000 / r.sent:.2f}" for role, cpu in parts)


def idle_by_role(r: Round) -> dict[str, list[float]]:
    """Milliseconds of CPU per second at rest, per role, one figure per process."""
    by_role: dict[str, list[float]] = {}
    for entry in r.notes.get("idle_ms_per_s", []):
        by_role.setdefault(str(entry["role"]), []).append(float(entry["ms_per_s"]))
    return by_role


def _rate_target(
    rounds: list[Round], scenario: str, goal: float, *, versus: float | None = None
) -> tuple[str, str] | None:
    """(figures, verdict) for a highest-rate-kept-up goal of Sphere (scaled), optionally also
    ``versus`` times the tutorial's in the same run."""
    steps = steps_of(rounds, scenario, "sphere")
    if not steps:
        return None
    best = best_rate(steps)
    top = steps[-1].offered
    figures = f"Sphere {_f(best)} msg/s" if best is not None else "Sphere: none kept up"
    if best is not None and best == top:
        figures += " (the highest step of this run)"
    ok = best is not None and best >= goal
    if versus is not None:
        tutorial = steps_of(rounds, scenario, "tutorial")
        if tutorial:
            theirs = best_rate(tutorial)
            if theirs is None:
                figures += f" vs tutorial: none kept up (from {_f(tutorial[0].offered)} msg/s)"
            else:
                figures += f" vs tutorial {_f(theirs)} msg/s ({_ratio(best or 0.0, theirs)})"
            ok = ok and (best or 0.0) >= versus * (theirs or 0.0)
        else:
            figures += " (the tutorial was not in this run)"
    if not ok and best is not None and best == top and top < goal:
        return figures, f"not checked: steps end at {_f(top)} msg/s"
    return figures, "met" if ok else "**missed**"


def targets(rounds: list[Round]) -> list[tuple[str, str, str]]:
    """(target, figures, verdict) for each target that this run's rounds can check."""
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    sphere, tutorial, bare = (find(rounds, "room-1000", s) for s in ("sphere", "tutorial", "bare"))
    if sphere and bare:
        rows.append(
            (
                "1,000 members: deliveries per server-CPU-second ≥ ½ the bare server's",
                f"{_f(sphere.per_cpu_second)} vs {_f(bare.per_cpu_second)} "
                f"({_ratio(sphere.per_cpu_second, bare.per_cpu_second)})",
                verdict(sphere.per_cpu_second >= 0.5 * bare.per_cpu_second),
            )
        )
        rows.append(
            (
                "1,000 members × 10 msg/s: p99 send → last member ≤ 2× the bare server's",
                f"{_f(sphere.p99_ms)} ms vs {_f(bare.p99_ms)} ms "
                f"({_ratio(sphere.p99_ms, bare.p99_ms)})",
                verdict(sphere.p99_ms <= 2 * bare.p99_ms),
            )
        )
    if sphere and tutorial:
        rows.append(
            (
                "1,000 members: deliveries per server-CPU-second ≥ 15× the tutorial's",
                f"{_f(sphere.per_cpu_second)} vs {_f(tutorial.per_cpu_second)} "
                f"({_ratio(sphere.per_cpu_second, tutorial.per_cpu_second)})",
                verdict(sphere.per_cpu_second >= 15 * tutorial.per_cpu_second),
            )
        )
    burst = find(rounds, "burst-1000", "sphere")
    if burst:
        rows.append(
            (
                "500-message burst into 1,000 members: everything delivered, in order",
                f"{burst.delivered:,}/{burst.expected:,} delivered, lost {burst.lost}, "
                f"duplicated {burst.duplicated}, out of order {burst.disordered}",
                verdict(burst.delivered == burst.expected and burst.clean),
            )
        )
    # Memory per idle connection from the largest population: with few connections the
    # gateway's fixed allocations (pools, caches, the first of each kind) still show.
    idle = {
        r.rooms * r.members: r.idle_kib_per_connection
        for r in rounds
        if r.system == "sphere"
        and r.idle_kib_per_connection is not None
        and not is_ingest(r)
        and not is_idle(r)
        and not is_dm(r)  # its senders are members too: they are not in the measured share
    }
    if idle:
        largest = max(idle)
        listed = ", ".join(f"{n:,}: {_f(k, 1)} KiB" for n, k in sorted(idle.items()) if n >= 1000)
        rows.append(
            (
                "≤ 20 KiB per idle connection in a gateway (at the most connections)",
                listed or f"{largest:,}: {_f(idle[largest], 1)} KiB",
                verdict((idle[largest] or 0) <= 20),
            )
        )
    ingest_rows = [
        ("50 × 10: highest rate kept up ≥ 1,000 msg/s, at least 3× the tutorial's (same run)",
         _rate_target(rounds, "ingest-50x10", 1000, versus=3)),
        ("50 × 100: highest rate kept up ≥ 500 msg/s", _rate_target(rounds, "ingest-50x100", 500)),
    ]  # fmt: skip
    for text, judged in ingest_rows[:1]:
        if judged:
            rows.append((text, *judged))
    at_100 = at_rate(steps_of(rounds, "ingest-50x10", "sphere"), 100)
    if at_100 is not None:
        rows.append(
            (
                "50 × 10: server CPU per message at 100 msg/s, all Sphere processes ≤ 1 ms",
                f"{_f(at_100.cpu_per_message_ms, 2)} ms ({per_message_split(at_100)})",
                verdict(at_100.cpu_per_message_ms <= 1.0),
            )
        )
    for text, judged in ingest_rows[1:]:
        if judged:
            rows.append((text, *judged))
    skewed = find(rounds, "rooms-100x100-skewed", "sphere")
    if skewed:
        rows.append(
            (
                "100 × 100 skewed at 50 msg/s: p99 send → last member ≤ 100 ms",
                f"{_f(skewed.p99_ms)} ms ({skewed.delivered:,}/{skewed.expected:,} delivered)",
                verdict(skewed.p99_ms <= 100),
            )
        )
    storm, storm_bare = (find(rounds, "storm-1000", s) for s in ("sphere", "bare"))
    if storm and storm_bare:
        rows.append(
            (
                "reconnect storm, 1,000 members: p99 of live traffic ≤ 3× the bare server's",
                f"{_f(storm.p99_ms)} ms vs {_f(storm_bare.p99_ms)} ms "
                f"({_ratio(storm.p99_ms, storm_bare.p99_ms)})",
                verdict(storm.p99_ms <= 3 * storm_bare.p99_ms),
            )
        )
    at_rest = [r for r in rounds if is_idle(r) and r.system in {"sphere", "sphere-embedded"}]
    if at_rest:
        own: list[str] = []
        shared: list[str] = []
        worst = 0.0
        population = f"{at_rest[0].rooms} × {at_rest[0].members:,}"
        for r in at_rest:
            for role, figures in idle_by_role(r).items():
                text = f"{role} {max(figures):.2f}"
                if role in SPHERE_OWN:
                    own.append(f"{LABELS[r.system]} {text}")
                    worst = max(worst, max(figures))
                elif r.system == "sphere":
                    shared.append(text + (f" (max of {len(figures)})" if len(figures) > 1 else ""))
        rows.append(
            (
                "idle cost per process ≤ 2 ms of CPU per second (Sphere's processes, at rest "
                f"with {population} connected)",
                "; ".join(own) + " ms/s"
                + (f"; shared, not judged: {', '.join(shared)} ms/s" if shared else ""),
                verdict(bool(own) and worst <= IDLE_LIMIT_MS),
            )
        )  # fmt: skip
    costs = {
        r.members: r.server_cpu / r.delivered * 1e6
        for r in rounds
        if r.system == "sphere" and r.scenario == f"room-{r.members}" and r.delivered
    }
    if len(costs) >= 2:
        low, high = min(costs.values()), max(costs.values())
        listed = ", ".join(f"{m:,}: {c:,.1f} µs" for m, c in sorted(costs.items()))
        rows.append(
            (
                "server CPU per delivery flat within 1.5× from the smallest to the largest room",
                listed,
                verdict(high <= 1.5 * low),
            )
        )
    return rows


def table(rounds: list[Round]) -> list[str]:
    lines = [
        "| scenario | system | rooms × members | offered msg/s | delivered | deliveries/s "
        "| per server-CPU-s | p50 ms | p99 ms | max ms | lost | dup | out of order "
        "| KiB/idle conn | load gen CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        if is_idle(r):
            continue
        lines.append(
            f"| {r.scenario} | {LABELS.get(r.system, r.system)} | {r.rooms} × {r.members:,} "
            f"| {_f(r.offered, 1) if r.offered else 'burst'} | {r.delivered:,}/{r.expected:,} "
            f"| {_f(r.deliveries_per_s)} | {_f(r.per_cpu_second)} | {_f(r.p50_ms, 1)} "
            f"| {_f(r.p99_ms, 1)} | {_f(r.max_ms, 1)} | {r.lost:,} | {r.duplicated:,} "
            f"| {r.disordered:,} | {_f(r.idle_kib_per_connection, 1)} | {_f(r.loadgen_cpu, 1)} |"
        )
    return lines


def ratios(rounds: list[Round]) -> list[str]:
    lines = [
        "| scenario | per server-CPU-s: Sphere / tutorial | Sphere / bare "
        "| p99: Sphere / tutorial | Sphere / bare |",
        "|---|---:|---:|---:|---:|",
    ]
    scenarios = [
        r.scenario
        for r in rounds
        if not r.scenario.startswith("sweep")
        and not is_ingest(r)
        and not is_idle(r)
        and not is_dm(r)  # Sphere only: nothing to compare with
    ]
    for scenario in dict.fromkeys(scenarios):
        s, t, b = (find(rounds, scenario, name) for name in ("sphere", "tutorial", "bare"))
        if s is None:
            continue
        lines.append(
            f"| {scenario} "
            f"| {_ratio(s.per_cpu_second, t.per_cpu_second) if t else '–'} "
            f"| {_ratio(s.per_cpu_second, b.per_cpu_second) if b else '–'} "
            f"| {_ratio(s.p99_ms, t.p99_ms) if t else '–'} "
            f"| {_ratio(s.p99_ms, b.p99_ms) if b else '–'} |"
        )
    return lines


def saturation(rounds: list[Round]) -> list[str]:
    sweeps = [r for r in rounds if r.scenario.startswith("sweep")]
    if not sweeps:
        return []
    lines = [
        "| system | members | highest rate kept up (msg/s) | its deliveries/s "
        "| first rate not kept up | its deliveries/s, p99 ms, lost |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for system in dict.fromkeys(r.system for r in sweeps):
        for members in sorted({r.members for r in sweeps if r.system == system}):
            steps = [r for r in sweeps if r.system == system and r.members == members]
            kept = [r for r in steps if kept_up(r)]
            broke = [r for r in steps if not kept_up(r)]
            best = max(kept, key=lambda r: r.offered) if kept else None
            first = min(broke, key=lambda r: r.offered) if broke else None
            lines.append(
                f"| {LABELS.get(system, system)} | {members:,} "
                f"| {_f(best.offered) if best else 'none'} "
                f"| {_f(best.deliveries_per_s) if best else '–'} "
                f"| {_f(first.offered) if first else 'not reached'} "
                + (
                    f"| {_f(first.deliveries_per_s)}, {_f(first.p99_ms)}, {first.lost:,} |"
                    if first
                    else "| – |"
                )
            )
    return lines


def kept_up(r: Round) -> bool:
    return r.delivered >= 0.99 * r.expected and r.p99_ms < 1000


def ingest(rounds: list[Round]) -> list[str]:
    """The ingest family: a summary per population and system, then every step per system."""
    found = [r for r in rounds if is_ingest(r)]
    if not found:
        return []
    scenarios = list(dict.fromkeys(r.scenario for r in found))
    systems = list(dict.fromkeys(r.system for r in found))
    lines = [
        "| rooms × members | system | highest rate kept up (msg/s) | first rate not kept up "
        "| CPU per message at 100 msg/s (ms) | p50 / p99 at 100 msg/s (ms) "
        "| p50 / p99 at the highest rate kept up (ms) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for system in systems:
            steps = steps_of(found, scenario, system)
            if not steps:
                continue
            best = best_rate(steps)
            broke = next((r for r in steps if not r.delivered_in_time), None)
            low = at_rate(steps, 100)
            top = at_rate(steps, best) if best is not None else None
            lines.append(
                f"| {steps[0].rooms} × {steps[0].members:,} | {LABELS.get(system, system)} "
                f"| {_f(best) if best is not None else 'none'} "
                f"| {_f(broke.offered) if broke else 'not reached'} "
                f"| {_f(low.cpu_per_message_ms, 2) if low else '–'} "
                f"| {f'{_f(low.p50_ms, 1)} / {_f(low.p99_ms, 1)}' if low else '–'} "
                f"| {f'{_f(top.p50_ms, 1)} / {_f(top.p99_ms, 1)}' if top else '–'} |"
            )
    for system in systems:
        lines += [
            "",
            f"### {LABELS.get(system, system)}",
            "",
            "| rooms × members | offered msg/s | sent | delivered | lost / dup / out of order "
            "| deliveries/s | p50 ms | p99 ms | max ms | CPU per message (ms) "
            "| of which, per process (ms) | ack p50 / p99 ms | kept up |",
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---|",
        ]
        for scenario in scenarios:
            for r in steps_of(found, scenario, system):
                ack = (
                    f"{_f(r.notes['ack_p50_ms'], 1)} / {_f(r.notes['ack_p99_ms'], 1)}"
                    if "ack_p50_ms" in r.notes
                    else "–"
                )
                lines.append(
                    f"| {r.rooms} × {r.members:,} | {_f(r.offered)} | {r.sent:,} "
                    f"| {r.delivered:,}/{r.expected:,} "
                    f"| {r.lost:,} / {r.duplicated:,} / {r.disordered:,} "
                    f"| {_f(r.deliveries_per_s)} | {_f(r.p50_ms, 1)} | {_f(r.p99_ms, 1)} "
                    f"| {_f(r.max_ms, 1)} | {_f(r.cpu_per_message_ms, 2)} "
                    f"| {per_message_split(r)} | {ack} "
                    f"| {'yes' if r.delivered_in_time else '**no**'} |"
                )
    return lines


def dm_table(rounds: list[Round]) -> list[str]:
    """The DM scenario, per system: two members per DM, both counted."""
    found = [r for r in rounds if is_dm(r)]
    if not found:
        return []
    lines = [
        "| system | DMs | users connected | offered msg/s | sent | delivered "
        "| lost / dup / out of order | deliveries/s | per server-CPU-s | p50 ms | p99 ms | max ms "
        "| CPU per message (ms) | of which, per process (ms) | ack p50 / p99 ms | kept up |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in found:
        ack = (
            f"{_f(r.notes['ack_p50_ms'], 1)} / {_f(r.notes['ack_p99_ms'], 1)}"
            if "ack_p50_ms" in r.notes
            else "–"
        )
        lines.append(
            f"| {LABELS.get(r.system, r.system)} | {r.rooms:,} | {r.rooms * r.members:,} "
            f"| {_f(r.offered)} | {r.sent:,} | {r.delivered:,}/{r.expected:,} "
            f"| {r.lost:,} / {r.duplicated:,} / {r.disordered:,} "
            f"| {_f(r.deliveries_per_s)} | {_f(r.per_cpu_second)} | {_f(r.p50_ms, 1)} "
            f"| {_f(r.p99_ms, 1)} | {_f(r.max_ms, 1)} | {_f(r.cpu_per_message_ms, 2)} "
            f"| {per_message_split(r)} | {ack} "
            f"| {'yes' if r.delivered_in_time else '**no**'} |"
        )
    return lines


def idle_table(rounds: list[Round]) -> list[str]:
    """Each system's processes at rest: CPU per second, per role (max over its processes)."""
    found = [r for r in rounds if is_idle(r)]
    if not found:
        return []
    lines = [
        "| system | connected | process | processes | CPU at rest, ms per s (max per process) "
        "| all of them, ms per s | ≤ 2 ms/s |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for r in found:
        for role, figures in idle_by_role(r).items():
            judged = "met" if max(figures) <= IDLE_LIMIT_MS else "**missed**"
            lines.append(
                f"| {LABELS.get(r.system, r.system)} | {r.rooms * r.members + r.rooms:,} "
                f"| {role}{' (shared)' if role in SHARED else ''} | {len(figures)} "
                f"| {max(figures):.2f} | {sum(figures):.2f} | {judged} |"
            )
    return lines


def plots(rounds: list[Round], out: Path) -> list[str]:
    """Latency and deliveries per CPU-second against room size, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steady = [r for r in rounds if r.scenario == f"room-{r.members}"]
    if not steady:
        return []
    made = []
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system in dict.fromkeys(r.system for r in steady):
        points = sorted((r.members, r.p50_ms, r.p99_ms) for r in steady if r.system == system)
        xs = [p[0] for p in points]
        ax.plot(xs, [p[2] for p in points], marker="o", label=f"{LABELS[system]} p99")
        ax.plot(xs, [p[1] for p in points], marker=".", linestyle="--",
                label=f"{LABELS[system]} p50")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("members in the room (connected)")
    ax.set_ylabel("send → last member (ms)")
    ax.set_title("Latency at a fixed offered rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    made.append("latency.png")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system in dict.fromkeys(r.system for r in steady):
        costs = sorted((r.members, r.per_cpu_second) for r in steady if r.system == system)
        ax.plot([c[0] for c in costs], [c[1] for c in costs], marker="o", label=LABELS[system])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("members in the room (connected)")
    ax.set_ylabel("deliveries per server-CPU-second")
    ax.set_title("Cost of delivery (all server processes, Redis and PostgreSQL)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "per_cpu.png", dpi=110)
    plt.close(fig)
    made.append("per_cpu.png")
    return made


def write_report(
    rounds: list[Round], out: Path, *, command: str, kind: str, minutes: float
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps([r.as_dict() for r in rounds], indent=1, default=str) + "\n"
    )
    images = plots(rounds, out)
    lines = [
        "# Benchmark results",
        "",
        f"Made by `{command}` ({kind} set) on {time.strftime('%Y-%m-%d')} in "
        f"{minutes:.1f} minutes; the raw figures are in `results.json`. "
        "Method and scenarios: [README.md](README.md).",
        "",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        "- Systems: Sphere in the scaled mode (one daphne gateway, one `fanout_worker`, "
        "PostgreSQL, Redis); Sphere in the embedded mode (one daphne process, SQLite, the "
        "fan-out in-process: the ingest family and the DMs only); the Channels tutorial chat "
        "(daphne, channels-redis' default layer); a bare `websockets` broadcast server (the "
        "CPython ceiling).",
        "- Server CPU counts every process of a system: Sphere's gateway, worker, Redis and "
        "PostgreSQL; the embedded Sphere's one process; the tutorial's daphne and Redis; the "
        "bare server's one process.",
        "",
        "## Targets",
        "",
        "| target | this run | verdict |",
        "|---|---|---|",
        *[f"| {t} | {figures} | {v} |" for t, figures, v in targets(rounds)],
        "",
        "## Ratios",
        "",
        *ratios(rounds),
        "",
        "## Every round",
        "",
        *table(rounds),
        "",
    ]
    ing = ingest(rounds)
    if ing:
        lines += [
            "## Ingest",
            "",
            "R rooms × K members, one sender per room; the total offered rate, spread evenly "
            "over the rooms' senders on an open-loop schedule (Sphere's senders pipeline: the "
            "next send never waits for an ack, up to the protocol's 64 sends awaiting their "
            "answer), was stepped up until a step was not kept up. "
            "Kept up: every message delivered to every member once and in order, and p99 send "
            f"→ last member ≤ {LATE_MS / 1000:g} s. CPU per message: the system's server CPU "
            "(every process) over the step, divided by the messages sent.",
            "",
            *ing,
            "",
        ]
    dm_lines = dm_table(rounds)
    if dm_lines:
        lines += [
            "## Direct messages",
            "",
            "Two-person DMs, both members connected (one connection each; the sender's own "
            "connection is one of the two and counts as the other's does); the total offered "
            "rate spread over the DMs in turn on an open-loop schedule. Delivered counts "
            "every message at both members' connections. Kept up, CPU per message and its "
            "split: as in the ingest family. Sphere only: the other systems have no DMs.",
            "",
            *dm_lines,
            "",
        ]
    idle_lines = idle_table(rounds)
    if idle_lines:
        lines += [
            "## Idle cost",
            "",
            "Each process's CPU over a window without traffic, once the system had settled, "
            "with the ingest population connected (members and senders; the clients' pings go "
            "on). Redis and PostgreSQL are shared with the machine's other users (the tutorial "
            "uses the same Redis): their figures are context, not Sphere's own cost.",
            "",
            *idle_lines,
            "",
        ]
    sat = saturation(rounds)
    if sat:
        lines += [
            "## Saturation",
            "",
            "Each system's offered rate was raised until it stopped keeping up (less than 99 % "
            "delivered by the end of the drain, or p99 over a second).",
            "",
            *sat,
            "",
        ]
    for image in images:
        lines += [f"![{image[:-4]}]({image})", ""]
    path = out / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path
