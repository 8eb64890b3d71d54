"""Sphere against the Channels tutorial and a bare websockets server, in one run.

    python -m bench quick     # a few minutes: 100 and 1,000 members, a 500-message burst,
                              # 50 rooms x 10 members at 100 and 500 msg/s, idle cost
    python -m bench full      # every scenario, saturation sweeps, ingest steps and DMs included
    python -m bench tiny      # a few clients and messages: keeps the harness working (CI)
    python -m bench full --dms-only   # 1,000 two-person DMs at 100 msg/s, Sphere's two modes

Needs PostgreSQL and Redis on 127.0.0.1 (Sphere's scaled mode and the tutorial's channel
layer); everything runs on loopback, every scenario is bounded in connections and time. Sphere
in the embedded mode (``sphere-embedded``) runs the ingest family and the DMs only; the DMs are
Sphere's alone (docs/bench/README.md, "Scenarios").
Writes ``docs/bench/RESULTS.md``, ``results.json`` and the plots (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.harness import Round, Session, burst, steady
from bench.systems import ROOT, SYSTEMS, System, remove, scratch, stop_all

Schedule = list[tuple[float, int]]


@dataclass
class Step:
    scenario: str
    schedule: Callable[[], Schedule]
    offered: float
    drain_s: float = 15.0
    storm: float = 0.0


MAIN = frozenset({"sphere", "tutorial", "bare"})  # the big-room scenarios' systems
EVERY = MAIN | {"sphere-embedded"}
SPHERE = frozenset({"sphere", "sphere-embedded"})  # Sphere's two modes: the DM scenario
PROFILED_INGEST = (50, 10, 500.0)  # --profile: the ingest round sampled (rooms, members, rate)


@dataclass
class Plan:
    """One population (rooms x members), connected once, and the rounds run on it."""

    rooms: int
    members: int
    steps: list[Step]
    tickets: int = 2  # one spare: a failed first attempt opens with another
    sweep: list[float] = field(default_factory=list)  # offered messages/s, until it breaks
    # The ingest family: total offered messages/s over every room's sender, stepped up until
    # a step is not kept up; ``ingest_s`` seconds each.
    ingest: list[float] = field(default_factory=list)
    ingest_s: float = 5.0
    idle_s: float = 0.0  # the system at rest with this population connected, measured first
    systems: frozenset[str] = MAIN
    dms: bool = False  # ``rooms`` two-person DMs (``members`` is 2), Sphere only


def one_room(members: int, rate: float, seconds: float) -> Step:
    return Step(f"room-{members}", lambda: steady(1, rate, seconds), rate)


def ingest(rooms: int, members: int, rates: list[float], *, idle_s: float = 0.0) -> Plan:
    """R rooms x K members, one sender per room, open-loop total rates stepped up: every
    system, the embedded mode included. A ticket for each of the fleet's three attempts at
    opening a connection."""
    return Plan(rooms, members, [], tickets=3, ingest=rates, idle_s=idle_s, systems=EVERY)


def dms(count: int, rate: float, seconds: float) -> Plan:
    """``count`` two-person DMs, both members connected (the sender is one of them), ``rate``
    messages per second in all, DM after DM (message n goes to DM n mod count): Sphere's two
    modes (docs/dms.md; the other systems have no DMs)."""
    step = Step(f"dm-{count}", lambda: steady(count, rate, seconds), rate)
    return Plan(count, 2, [step], tickets=3, systems=SPHERE, dms=True)


def plans(kind: str) -> list[Plan]:
    if kind == "tiny":
        return [
            Plan(1, 5, [one_room(5, 20, 1.0), Step("burst-5", lambda: burst(20), 0)]),
            replace(ingest(2, 3, [10]), ingest_s=1.0, idle_s=2.0),
            dms(10, 20, 1.0),
        ]
    if kind == "quick":
        return [
            ingest(50, 10, [100, 500], idle_s=20),
            Plan(1, 100, [one_room(100, 10, 5)]),
            Plan(
                1,
                1000,
                [one_room(1000, 10, 10), Step("burst-1000", lambda: burst(500), 0, drain_s=30)],
            ),
            dms(1000, 100, 20),
        ]
    return [
        ingest(50, 10, [100, 250, 500, 1000, 2000], idle_s=20),
        ingest(50, 100, [100, 250, 500, 1000]),
        Plan(1, 10, [one_room(10, 10, 10)], sweep=[100, 200, 400, 800]),
        Plan(1, 100, [one_room(100, 10, 10)], sweep=[100, 200, 400, 800]),
        Plan(
            1,
            1000,
            [
                one_room(1000, 10, 10),
                Step("burst-1000", lambda: burst(500), 0, drain_s=30),
                Step("storm-1000", lambda: steady(1, 10, 20), 10, storm=0.01),
            ],
            tickets=4,
            sweep=[20, 40, 80, 160],
        ),
        Plan(1, 5000, [one_room(5000, 4, 10)], sweep=[8, 16, 32]),
        Plan(
            100,
            100,
            [Step("rooms-100x100-skewed", lambda: steady(100, 50, 10, skew=1.1), 50)],
        ),
        dms(1000, 100, 20),
    ]


async def run_system(
    system: System,
    kind: str,
    results: list[Round],
    profile: Path | None = None,
    *,
    ingest_only: bool = False,
    dms_only: bool = False,
) -> None:
    processes = 1 if kind == "tiny" else 2
    chosen = [
        plan
        for plan in plans(kind)
        if system.name in plan.systems
        and (plan.ingest or not ingest_only)
        and (plan.dms or not dms_only)
    ]
    if not chosen:
        system.stop()
        return
    await asyncio.to_thread(system.start)
    try:
        for plan in chosen:
            session = Session(
                system,
                rooms=plan.rooms,
                members=plan.members,
                tickets=plan.tickets,
                processes=processes if plan.rooms * plan.members >= 100 else 1,
                dms=plan.dms,
            )
            try:
                await session.open()
            except Exception as exc:  # a plan that cannot start is reported, not fatal
                print(f"{system.name}: {plan.rooms} x {plan.members} skipped: {exc}",
                      file=sys.stderr)  # fmt: skip
                await session.close()
                continue
            try:
                if plan.idle_s:
                    results.append(
                        await session.idle(f"idle-{plan.rooms}x{plan.members}", plan.idle_s)
                    )
                for step in plan.steps:
                    results.append(
                        await session.run(
                            step.scenario,
                            step.schedule(),
                            offered=step.offered,
                            drain_s=step.drain_s,
                            storm=step.storm,
                            profile=profile
                            if system.dialect == "sphere" and step.scenario == "room-1000"
                            else None,
                        )
                    )
                for rate in plan.sweep:
                    result = await session.run(
                        f"sweep-{plan.members}", steady(1, rate, 5), offered=rate, drain_s=10
                    )
                    results.append(result)
                    kept_up = result.delivered >= 0.99 * result.expected and result.p99_ms < 1000
                    if not kept_up:
                        break
                scenario = f"ingest-{plan.rooms}x{plan.members}"
                for rate in plan.ingest:
                    sampled = (plan.rooms, plan.members, rate) == PROFILED_INGEST
                    result = await session.run(
                        scenario,
                        steady(plan.rooms, rate, plan.ingest_s),
                        offered=rate,
                        drain_s=10,
                        profile=profile if system.dialect == "sphere" and sampled else None,
                        profile_tag=f"{scenario}-{rate:g}",
                    )
                    results.append(result)
                    if not result.delivered_in_time:
                        break
            finally:
                await session.close()
    finally:
        await asyncio.to_thread(system.stop)


async def main_async(args: argparse.Namespace) -> list[Round]:
    results: list[Round] = []
    var = scratch()
    try:
        for name in args.systems:
            await run_system(SYSTEMS[name](var), args.kind, results, args.profile,
                             ingest_only=args.ingest_only, dms_only=args.dms_only)  # fmt: skip
    finally:
        if not args.keep:
            remove(var)
        else:
            print(f"logs kept in {var}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["tiny", "quick", "full"], nargs="?", default="quick")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument(
        "--ingest-only", action="store_true", help="the ingest family (and idle cost) only"
    )
    parser.add_argument(
        "--dms-only", action="store_true", help="the DM scenario only (Sphere's two modes)"
    )
    parser.add_argument("--no-report", action="store_true", help="print figures only")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs")
    parser.add_argument("--json", action="store_true", help="print every round as JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample Sphere's server processes with py-spy during room-1000 and the 50 x 10 "
        "ingest round at 500 msg/s into this folder",
    )
    args = parser.parse_args(argv)
    # A harness stopped with SIGTERM stops its servers too (atexit runs on SystemExit).
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    from bench.report import targets, write_report

    if not args.no_report:
        write_report(results, args.out, command=command, kind=args.kind,
                     minutes=(time.monotonic() - started) / 60)  # fmt: skip
        print(f"wrote {args.out / 'RESULTS.md'}")
    for target, figures, verdict in targets(results):
        print(f"{verdict.strip('*'):>7}  {target}: {figures}")
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
