"""Rate limits outside admission: response header values, the client IP, the /token limiter.

Admission (policies/admission.py) counts resource requests; this module says what the counts
look like on the wire and limits sign-in attempts. Header syntax follows
draft-ietf-httpapi-ratelimit-headers-10 (September 2025): `RateLimit-Policy` and `RateLimit` are
structured-field lists with one item per policy, `"name";q=<quota>;w=<window s>` and
`"name";r=<remaining>;t=<seconds to reset>`. The legacy `X-RateLimit-Limit/-Remaining/-Reset`
describe the most restrictive counter (fewest remaining; on a tie, the later reset).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any, cast

from fastapi import Request

from auth.errors import OAuthError
from config.settings import Settings
from policies.plans import window
from storage.guard_state import LOGIN_TAG, Counter, GuardStore, Verdict

log = logging.getLogger("tenantgate.rate_limit")

PRINCIPAL_POLICY = "principal"
TENANT_POLICY = "tenant"
IP_POLICY = "ip"
USERNAME_POLICY = "username"
# IPv6 clients are counted per /64: one host usually holds a whole /64 and could rotate through it.
IPV6_PREFIX = 64
# Keys of request.state: the admission Verdict (also read by logs and metrics), sign-in quotas.
ADMISSION_STATE = "rate_limit"
LOGIN_STATE = "login_rate_limit"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class Quota:
    policy: str
    counter: Counter


def quotas(state: Mapping[str, Any]) -> tuple[Quota, ...]:
    """The quotas a request was counted in, from its state (scope["state"]): the admission
    Verdict under `rate_limit`, or the sign-in quotas under `login_rate_limit`."""
    verdict = state.get(ADMISSION_STATE)
    if isinstance(verdict, Verdict):
        pairs = ((PRINCIPAL_POLICY, verdict.principal), (TENANT_POLICY, verdict.tenant))
        return tuple(Quota(name, counter) for name, counter in pairs if counter is not None)
    login = state.get(LOGIN_STATE)
    if isinstance(login, tuple):
        return tuple(item for item in login if isinstance(item, Quota))
    return ()


def reset_seconds(counter: Counter) -> int:
    """Whole seconds until the window resets, rounded up (so waiting that long is enough)."""
    return max(1, -(-counter.reset_ms // 1000))


def most_restrictive(items: Sequence[Quota]) -> Quota:
    return min(items, key=lambda q: (q.counter.remaining, -q.counter.reset_ms))


def retry_after(items: Sequence[Quota]) -> int:
    """Seconds until every exhausted quota has room again (the same as X-RateLimit-Reset)."""
    return max((reset_seconds(q.counter) for q in items if q.counter.remaining == 0), default=1)


def header_values(items: Sequence[Quota]) -> list[tuple[str, str]]:
    if not items:
        return []
    worst = most_restrictive(items).counter
    return [
        (
            "RateLimit-Policy",
            ", ".join(f'"{q.policy}";q={q.counter.limit};w={q.counter.window}' for q in items),
        ),
        (
            "RateLimit",
            ", ".join(
                f'"{q.policy}";r={q.counter.remaining};t={reset_seconds(q.counter)}' for q in items
            ),
        ),
        ("X-RateLimit-Limit", str(worst.limit)),
        ("X-RateLimit-Remaining", str(worst.remaining)),
        ("X-RateLimit-Reset", str(reset_seconds(worst))),
    ]


@lru_cache(maxsize=16)
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """TENANTGATE_TRUSTED_PROXIES as networks ("10.0.0.0/8", "192.0.2.7"); ValueError if bad."""
    return tuple(ip_network(entry.strip(), strict=False) for entry in entries)


def parse_ip(value: str | None) -> IPAddress | None:
    """An address as proxies write it: bare, `v4:port` or `[v6]:port`; IPv4-mapped v6 as v4."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]) -> str:
    """The socket peer, unless it is a trusted proxy: then the right-most X-Forwarded-For hop
    that is not one. Hops left of that were written by the client and prove nothing; a hop that
    is not an address stops the walk at the last proxy that wrote a trustworthy one."""
    address = parse_ip(peer)
    if address is None:
        return peer or "unknown"
    if not _is_trusted(address, trusted):
        return str(address)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        hop_address = parse_ip(hop)
        if hop_address is None:
            break
        address = hop_address
        if not _is_trusted(address, trusted):
            break
    return str(address)


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def request_client_ip(scope: Mapping[str, Any], settings: Settings) -> str:
    client = scope.get("client")
    peer = client[0] if client else None
    forwarded = [
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    ]
    return client_ip(peer, forwarded, trusted_networks(tuple(settings.trusted_proxies)))


def ip_bucket(ip: str) -> str:
    """The key an IP is counted under: the address, or its /64 for IPv6."""
    address = parse_ip(ip)
    if isinstance(address, IPv6Address):
        return str(ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address) if address is not None else ip


def keyed_hash(key: bytes, kind: str, value: str) -> str:
    """An HMAC, not a bare hash: usernames and client ids are guessable, so a bare SHA-256 of
    one could be reversed with a dictionary by anyone who reads the store."""
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def username_key(username: str, key: bytes) -> str:
    """Case-insensitive like the sign-in itself; keyed, so Redis holds no email addresses."""
    return keyed_hash(key, "username", username.strip().lower())


async def limit_login(request: Request, username: str) -> None:
    """Count a password sign-in attempt per client IP and per username, before any hashing.

    Raises OAuthError (429 with Retry-After) over either limit; refused attempts do not count.
    """
    settings = cast(Settings, request.app.state.settings)
    store = cast(GuardStore, request.app.state.guard)
    ip = request_client_ip(request.scope, settings)
    tally = await store.hit(
        LOGIN_TAG,
        [
            (f"ip:{ip_bucket(ip)}", window(settings.login_rate_limit_ip)),
            (
                f"user:{username_key(username, settings.system_key)}",
                window(settings.login_rate_limit_username),
            ),
        ],
    )
    by_ip, by_username = (
        Quota(IP_POLICY, tally.counters[0]),
        Quota(USERNAME_POLICY, tally.counters[1]),
    )
    # The username quota is shown only when it refuses: otherwise its countdown would tell
    # anyone how often somebody else signs in (or tries to) as that user.
    refused_by_username = not tally.allowed and by_username.counter.remaining == 0
    shown = (by_ip, by_username) if refused_by_username else (by_ip,)
    setattr(request.state, LOGIN_STATE, shown)
    if not tally.allowed:
        seconds = retry_after(shown)
        log.info("sign-in attempts limited (%s)", "username" if refused_by_username else "ip")
        raise OAuthError(
            "invalid_request",
            f"too many sign-in attempts; retry after {seconds} seconds",
            retry_after=seconds,
        )


def warn_if_state_is_per_worker(settings: Settings) -> None:
    if settings.redis_url is None and settings.workers > 1:
        log.warning(
            "TENANTGATE_REDIS_URL is not set but %d workers run: each keeps its own rate-limit "
            "counters (limits are up to %d times looser) and its own revocations; set "
            "TENANTGATE_REDIS_URL to share them",
            settings.workers,
            settings.workers,
        )
