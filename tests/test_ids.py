"""Opaque ids sort by creation, even many within one millisecond."""

from __future__ import annotations

import re
import threading

from storage.ids import new_id


def test_ids_made_in_one_millisecond_still_sort_in_creation_order() -> None:
    made = [new_id("itm") for _ in range(5000)]  # many share a millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_id_shape_is_prefix_and_22_hex_digits() -> None:
    assert re.fullmatch(r"itm_[0-9a-f]{22}", new_id("itm"))


def test_ids_from_threads_are_unique_and_each_thread_sees_them_rise() -> None:
    seen: list[list[str]] = []

    def make() -> None:
        seen.append([new_id("aud") for _ in range(2000)])

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(ids == sorted(ids) for ids in seen)
    every = [i for ids in seen for i in ids]
    assert len(set(every)) == len(every)
