"""When the Redis breaker opens: enough failures, half of all calls or more, within the window."""

from __future__ import annotations

from storage.breaker import FailureRate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_few_failures_among_many_calls_are_no_outage() -> None:
    rate = FailureRate(window=10, min_failures=5, clock=Clock())
    for _ in range(100):
        rate.success()
    assert [rate.failure() for _ in range(5)] == [False] * 5
    # ...until they are half of what the window holds.
    assert not any(rate.failure() for _ in range(94))
    assert rate.failure()


def test_enough_failures_in_a_row_open_it() -> None:
    rate = FailureRate(window=10, min_failures=5, clock=Clock())
    rate.success()
    assert [rate.failure() for _ in range(5)] == [False, False, False, False, True]


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    rate = FailureRate(window=10, min_failures=3, clock=clock)
    assert [rate.failure(), rate.failure()] == [False, False]
    clock.now += 11
    assert [rate.failure(), rate.failure()] == [False, False]
    assert rate.failure()
    rate.reset()
    assert not rate.failure()


def test_the_callers_of_one_failed_round_trip_are_one_failure() -> None:
    rate = FailureRate(window=10, min_failures=2, clock=Clock())
    # A pipelined batch of 40 admissions times out: one failure, however many callers.
    assert not any([rate.failure(), *(rate.failure(distinct=False) for _ in range(39))])
    assert rate.failure()  # a second round trip fails: now it is sustained
