"""When a failing dependency counts as down: enough failures, and most calls, over a window.

One slow call under CPU load is not an outage; opening the breaker on it would trade exact
limits for per-process ones for no reason. A sustained failure is at least `min_failures`
distinct failures that are, counted per call, at least `ratio` of all calls within the last
`window` seconds. Calls that share one round trip (a pipelined batch) fail together with one
error: that is one distinct failure, however many callers it reaches.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureRate:
    """Calls and failures in one-second buckets over a sliding window; O(1) per call."""

    def __init__(
        self,
        *,
        window: float,
        min_failures: int,
        ratio: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.min_failures = min_failures
        self.ratio = ratio
        self._clock = clock
        # [second, calls, failed calls, distinct failures], oldest first
        self._buckets: deque[list[int]] = deque()

    def success(self) -> None:
        self._bucket()[1] += 1

    def failure(self, *, distinct: bool = True) -> bool:
        """Count a failed call (`distinct`: not one more caller of a failure already counted);
        True when the failures now amount to a sustained failure."""
        bucket = self._bucket()
        bucket[1] += 1
        bucket[2] += 1
        bucket[3] += distinct
        calls = sum(b[1] for b in self._buckets)
        failed = sum(b[2] for b in self._buckets)
        distinct_failures = sum(b[3] for b in self._buckets)
        return distinct_failures >= self.min_failures and failed >= self.ratio * calls

    def reset(self) -> None:
        self._buckets.clear()

    def _bucket(self) -> list[int]:
        second = int(self._clock())
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            return buckets[-1]
        oldest = second - self.window
        while buckets and buckets[0][0] <= oldest:
            buckets.popleft()
        bucket = [second, 0, 0, 0]
        buckets.append(bucket)
        return bucket
