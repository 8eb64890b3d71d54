"""The harness's checker and statistics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stats import (
    Tally,
    Verdict,
    highest_kept_up,
    idle_costs,
    latencies,
    merge_latest,
    percentile,
)


def test_tally_counts_in_order_arrivals_as_clean() -> None:
    tally = Tally()
    for n in range(5):
        assert tally.record(n)
    assert (tally.received, tally.duplicated, tally.disordered, tally.lost(5)) == (5, 0, 0, 0)


def test_tally_finds_duplicates_disorder_and_losses() -> None:
    tally = Tally()
    for n in [0, 2, 1, 2, 4]:
        tally.record(n)
    assert tally.received == 4  # 0, 2, 1, 4
    assert tally.duplicated == 1  # the second 2
    assert tally.disordered == 1  # 1 after 2
    assert tally.lost(6) == 2  # 3 and 5


def test_tally_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="start at 0"):
        Tally().record(-1)


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=300))
def test_tally_accounts_for_every_arrival(arrivals: list[int]) -> None:
    tally = Tally()
    for n in arrivals:
        tally.record(n)
    assert tally.received + tally.duplicated == len(arrivals)
    assert tally.received == len(set(arrivals))
    sent = max(arrivals, default=-1) + 1
    assert tally.lost(sent) == sent - len(set(arrivals))
    in_order = sorted(set(arrivals)) == [n for i, n in enumerate(arrivals) if n not in arrivals[:i]]
    assert (tally.disordered == 0) == in_order


def test_verdict_sums_connections_and_is_clean_only_without_faults() -> None:
    good, bad = Tally(), Tally()
    for n in range(3):
        good.record(n)
    bad.record(1)
    bad.record(1)
    verdict = Verdict()
    verdict.add(good, 3)
    assert verdict.clean
    other = Verdict()
    other.add(bad, 3)
    verdict.merge(other)
    assert (verdict.connections, verdict.received, verdict.lost, verdict.duplicated) == (2, 4, 2, 1)
    assert not verdict.clean


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="percentage"):
        percentile(values, 101)


def test_latency_is_to_the_last_arrival_of_each_message() -> None:
    parts = [{(1, 0): 10.5, (1, 1): 11.0}, {(1, 0): 10.7}]
    latest = merge_latest(parts)
    assert latest == {(1, 0): 10.7, (1, 1): 11.0}
    sent = {(1, 0): 10.0, (1, 1): 10.9, (1, 2): 11.0}  # (1, 2) never arrived
    assert sorted(round(x, 3) for x in latencies(sent, latest)) == [0.1, 0.7]


def test_the_highest_rate_kept_up_is_the_last_step_before_the_first_failure() -> None:
    assert highest_kept_up([(100, True), (250, True), (500, False)]) == 250
    assert highest_kept_up([(500, False), (100, True), (250, True)]) == 250  # any order
    assert highest_kept_up([(100, True), (250, True), (500, True)]) == 500  # the top step
    assert highest_kept_up([(100, False)]) is None
    assert highest_kept_up([]) is None
    # A pass above a failure is luck, not capacity.
    assert highest_kept_up([(100, True), (250, False), (500, True)]) == 100


def test_idle_cost_is_cpu_per_second_per_process_of_the_processes_read_twice() -> None:
    before = {1: 10.0, 2: 5.0, 3: 1.0}
    after = {1: 10.015, 2: 5.0, 4: 7.0}  # 3 ended, 4 started: neither is counted
    costs = idle_costs(before, after, 10.0, {1: "gateway", 2: "worker"})
    assert [(role, pid) for role, pid, _ in costs] == [("gateway", 1), ("worker", 2)]
    assert [round(ms, 6) for _, _, ms in costs] == [1.5, 0.0]  # 15 ms over 10 s
    assert idle_costs({5: 1.0}, {5: 1.0}, 2.0, {})[0][0] == "other"
    with pytest.raises(ValueError, match="length"):
        idle_costs(before, after, 0.0, {})
