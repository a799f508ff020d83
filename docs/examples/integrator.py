"""A tenantgate integrator in one file: client_credentials token, an item route, offline checks.

    export TENANTGATE_URL=https://api.example.com TENANTGATE_TENANT=acme
    export TENANTGATE_CLIENT_ID=cli_... TENANTGATE_CLIENT_SECRET=tgcs_...
    python integrator.py

Needs `httpx` and `pyjwt[crypto]`. docs/integrators.md walks through it; the tenantgate test
suite runs this file against a live server.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx
import jwt

# Renew a little before expiry, so a token never dies between our check and the server's.
EXPIRY_MARGIN = 30


class TenantgateError(Exception):
    """A response the integration cannot fix by retrying."""


class Forbidden(TenantgateError):
    """403: the token lacks a scope (ask the tenant admin), or the tenant is suspended."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title", "forbidden"))
        self.type = str(problem.get("type", ""))
        self.required_scopes: list[str] = list(problem.get("required_scopes", []))


class RateLimited(TenantgateError):
    """429 with a Retry-After longer than we are willing to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


class TenantgateClient:
    """Fetches and renews a client_credentials token and calls the API with it."""

    def __init__(
        self,
        http: httpx.Client,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        max_wait: float = 30.0,
    ) -> None:
        self.http = http
        self._auth = httpx.BasicAuth(client_id, client_secret)  # client_secret_basic
        self._scope = scope
        self._max_wait = max_wait
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self) -> str:
        if self._token is None or time.time() >= self._expires_at - EXPIRY_MARGIN:
            self._fetch_token()
        assert self._token is not None
        return self._token

    def _fetch_token(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        response = self.http.post("/token", data=form, auth=self._auth)
        if response.status_code != 200:
            # RFC 6749 error body: invalid_client (wrong, rotated or deleted secret),
            # invalid_scope (asked for more than the client may have), invalid_grant (tenant
            # suspended). None of them gets better by retrying.
            error = response.json()
            raise TenantgateError(f"{error['error']}: {error.get('error_description', '')}")
        body = response.json()
        self._token = body["access_token"]
        self._expires_at = time.time() + body["expires_in"]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API; renews the token once on 401 and waits out short 429s."""
        renewed = False
        while True:
            headers = {"Authorization": f"Bearer {self.token()}"}
            response = self.http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and not renewed:
                # Expired, revoked, or signed by a retired key: one fresh token, then give up.
                self._token, renewed = None, True
                continue
            if response.status_code == 429:
                retry_after = int(response.headers.get("Retry-After", "1"))
                if retry_after > self._max_wait:
                    raise RateLimited(retry_after)
                time.sleep(retry_after)
                continue
            if response.status_code == 403:
                raise Forbidden(response.json())
            if response.status_code == 401:
                raise TenantgateError(response.json().get("detail", "unauthorized"))
            return response


class OfflineVerifier:
    """Verifies tenantgate access tokens locally with the published keys (RFC 9068 profile)."""

    def __init__(self, http: httpx.Client, *, audience: str) -> None:
        metadata = http.get("/.well-known/oauth-authorization-server").json()
        self.issuer: str = metadata["issuer"]
        self._jwks_uri: str = metadata["jwks_uri"]
        self._http = http
        self._audience = audience
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0

    def _refresh(self) -> None:
        # Unknown kid = the server rotated its key; re-read at most every 10 s, so a flood of
        # made-up kids cannot turn into a flood of requests.
        if self._keys and time.monotonic() - self._fetched_at < 10:
            return
        jwks = self._http.get(self._jwks_uri).json()
        self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(jwks).keys if key.key_id}
        self._fetched_at = time.monotonic()

    def verify(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        kid = str(header.get("kid"))
        if kid not in self._keys:
            self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise jwt.InvalidTokenError("signed by an unknown key")
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],  # pinned per key: never trust the token's alg
            audience=self._audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "client_id", "scope"]},
        )
        return claims


def main() -> int:
    base_url = os.environ["TENANTGATE_URL"]
    tenant = os.environ["TENANTGATE_TENANT"]
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        client = TenantgateClient(
            http,
            os.environ["TENANTGATE_CLIENT_ID"],
            os.environ["TENANTGATE_CLIENT_SECRET"],
            scope=os.environ.get("TENANTGATE_SCOPE") or None,
        )
        page = client.request("GET", f"/v1/tenants/{tenant}/items", params={"limit": 10}).json()
        verifier = OfflineVerifier(
            http, audience=os.environ.get("TENANTGATE_AUDIENCE", "tenantgate")
        )
        claims = verifier.verify(client.token())
    summary = {
        "items": [item["sku"] for item in page["items"]],
        "sub": claims["sub"],
        "tid": claims.get("tid"),
        "scope": claims["scope"],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
