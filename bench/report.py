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

from bench.harness import Round

LABELS = {"sphere": "Sphere", "tutorial": "Channels tutorial", "bare": "bare websockets"}
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
        if r.system == "sphere" and r.idle_kib_per_connection is not None
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
    for scenario in dict.fromkeys(r.scenario for r in rounds if not r.scenario.startswith("sweep")):
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
        "PostgreSQL, Redis); the Channels tutorial chat (daphne, channels-redis' default "
        "layer); a bare `websockets` broadcast server (the CPython ceiling).",
        "- Server CPU counts every process of a system: Sphere's gateway, worker, Redis and "
        "PostgreSQL; the tutorial's daphne and Redis; the bare server's one process.",
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
