"""The gateway's loop-lag probe, and the send metrics: a histogram of every send, and a gauge
of the slowest rooms' worst send of the last minute whose labels stay bounded."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from fanout import metrics
from fanout.connections import LocalConnections


async def test_the_probe_observes_how_late_a_blocked_loop_ran_its_timer() -> None:
    loop = asyncio.get_running_loop()
    seen: list[float] = []
    observed = asyncio.Event()

    def observe(lag: float) -> None:
        seen.append(lag)
        observed.set()

    tasks = len(asyncio.all_tasks())
    probe = metrics.LoopLagProbe(loop, period=0.01, observe=observe)
    assert len(asyncio.all_tasks()) == tasks  # a timer, not a task
    # The loop is blocked: the timer, due after 0.01 s, runs at least 0.05 s late.
    time.sleep(0.06)  # noqa: ASYNC251 (blocking the loop is the point)
    await asyncio.wait_for(observed.wait(), 5)
    assert seen[0] >= 0.05 - 0.01
    probe.stop()
    count = len(seen)
    await asyncio.sleep(0.03)
    assert len(seen) == count  # stopped: nothing more


async def test_the_probe_never_observes_a_negative_lag() -> None:
    seen: list[float] = []
    done = asyncio.Event()

    def observe(lag: float) -> None:
        seen.append(lag)
        if len(seen) == 5:
            done.set()

    probe = metrics.LoopLagProbe(asyncio.get_running_loop(), period=0.001, observe=observe)
    await asyncio.wait_for(done.wait(), 5)
    probe.stop()
    assert min(seen) >= 0.0


async def test_the_gateways_connections_run_the_probe_and_stop_it() -> None:
    gateway = LocalConnections(asyncio.get_running_loop())
    handle = gateway.lag_probe.handle
    assert handle is not None
    assert not handle.cancelled()
    gateway.stop()
    assert handle.cancelled()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gauge(sends: metrics.RoomSends) -> dict[str, float]:
    (family,) = sends.collect()
    assert family.name == "sphere_room_send_seconds"
    return {sample.labels["room"]: sample.value for sample in family.samples}


def test_the_gauge_shows_the_ten_slowest_rooms_worst_send() -> None:
    sends = metrics.RoomSends(Clock())
    for room in range(1, 13):
        sends.observe(room, room / 100)
        sends.observe(room, room / 1000)  # faster: the worst stays
    assert gauge(sends) == {str(room): room / 100 for room in range(3, 13)}


def test_a_room_whose_sends_age_out_of_the_minute_leaves_the_gauge() -> None:
    clock = Clock()
    sends = metrics.RoomSends(clock)
    sends.observe(1, 2.0)
    sends.observe(2, 0.5)
    clock.now += 30
    sends.observe(2, 0.1)
    assert gauge(sends) == {"1": 2.0, "2": 0.5}
    clock.now += 31  # room 1's send, and room 2's first, are over a minute old
    assert gauge(sends) == {"2": 0.1}
    clock.now += 60
    assert gauge(sends) == {}
    sends.observe(3, 0.2)
    assert gauge(sends) == {"3": 0.2}
    assert len(sends.slots) == 1  # old slots are dropped as new ones start


def test_a_faster_room_drops_out_when_an_eleventh_slower_one_comes() -> None:
    sends = metrics.RoomSends(Clock())
    for room in range(10):
        sends.observe(room, 1.0 + room)
    sends.observe(99, 50.0)
    shown = gauge(sends)
    assert len(shown) == 10
    assert "0" not in shown
    assert shown["99"] == 50.0


def test_observe_send_feeds_the_histogram_and_the_gauge() -> None:
    count = REGISTRY.get_sample_value("sphere_send_seconds_count") or 0.0
    metrics.observe_send(424242, 99.0)  # slower than any real send: among the ten shown
    assert REGISTRY.get_sample_value("sphere_send_seconds_count") == count + 1
    assert REGISTRY.get_sample_value("sphere_room_send_seconds", {"room": "424242"}) == 99.0
