"""Opaque, time-ordered identifiers: sortable by creation, never sequential integers."""

import secrets
import threading
import time

_RANDOM_BITS = 40
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the newest id this process made


def new_id(prefix: str) -> str:
    """`prefix_` + 12 hex digits of milliseconds + 10 hex digits, random at each new
    millisecond and counting up within one (ULID's monotonic rule), so a process's ids sort in
    the order it made them even when many share a millisecond."""
    global _last  # noqa: PLW0603 - one process-wide sequence
    now = time.time_ns() // 1_000_000
    with _lock:
        millis, random = _last
        if now > millis:
            millis, random = now, secrets.randbits(_RANDOM_BITS - 1)  # headroom to count up
        else:  # the same millisecond (or the clock stepped back): count up from the last id
            random += 1
            if random >> _RANDOM_BITS:
                millis, random = millis + 1, 0
        _last = (millis, random)
    return f"{prefix}_{millis:012x}{random:010x}"
