"""X-Request-ID: a caller's id is kept when it is sane, otherwise the server makes one."""

from __future__ import annotations

import re

from storage.ids import new_id

REQUEST_ID_HEADER = b"x-request-id"
# Room for UUIDs, ULIDs, W3C trace ids and the like; nothing that could break a log line.
_SANE = re.compile(rb"^[A-Za-z0-9._:+=@/-]{1,128}$")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE.match(value):
                return value.decode("ascii")
            break
    return new_id("req")
