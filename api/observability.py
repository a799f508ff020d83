"""Structured logs: one JSON object per line, the request id of the current request, no secrets.

Redaction is the second line of defence: the code logs no credentials on purpose (the access
log is built from an allowlist of fields), and this formatter scrubs anything that looks like
one in case a message or a library does.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from config.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("tenantgate_request_id", default=None)

REDACTED = "[redacted]"
# Keys whose values are never logged, wherever they appear (extra fields, nested dicts).
SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|credential|api[_-]?key|private", re.I
)
_SECRET_PATTERNS = (
    # JWS compact serialisation (access tokens): header.payload.signature
    (re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), REDACTED),
    # HTTP credentials as they appear in a header value
    (re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]+", re.I), r"\1 " + REDACTED),
    # key=value and "key": "value" pairs whose key names a secret
    (
        re.compile(
            r"(?i)\b([\w-]*(?:password|secret|token|authorization|cookie)[\w-]*)"
            r"(\"?'?\s*[:=]\s*\"?'?)([^\s\"',&;}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
)
# LogRecord attributes that are not `extra=` fields.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


# Every secret pattern above contains one of these: most strings are cleared by one search.
_TRIGGER = re.compile(r"eyJ|bearer|basic|password|secret|token|authorization|cookie", re.I)


def redact_text(text: str) -> str:
    if not _TRIGGER.search(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return SECRET_KEYS.search(key) is not None


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` with secret-named keys and secret-looking strings replaced."""
    if key and _secret_key(key):
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return redact_text(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and extra fields.

    Exceptions are logged as their type and the frames of the traceback, not their message
    (driver errors quote SQL parameters, which may hold e-mail addresses or hashes), unless the
    exception class says `safe_to_log = True`: a message written for operators.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = redact(value, key)
        if record.exc_info and record.exc_info[0] is not None:
            error_type, error, tb = record.exc_info
            entry["error"] = error_type.__name__
            if getattr(error_type, "safe_to_log", False):  # a message written for operators
                entry["error_message"] = redact_text(str(error))
            entry["frames"] = [
                f"{frame.filename}:{frame.lineno} {frame.name}"
                for frame in traceback.extract_tb(tb)[-10:]
            ]
        return json.dumps(entry, default=str, separators=(",", ":"))


# Loggers that log statements, parameters or payloads at DEBUG/INFO: never below WARNING.
QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "python_multipart", "multipart", "httpx")


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig for the server (uvicorn applies it in every worker): JSON to stderr."""
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "api.observability.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # tenantgate.access replaces uvicorn's access log, which prints raw paths and queries.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }
