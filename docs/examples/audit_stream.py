"""Follow a tenant's audit trail live; resume after a disconnect without gaps or repeats.

pip install websockets; set TENANTGATE_WS (wss://api.example.com), TENANTGATE_TENANT and
TENANTGATE_TOKEN (an access token with audit:read), then: python audit_stream.py [FROM_SEQ]
"""

import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

URL = f"{os.environ['TENANTGATE_WS']}/v1/tenants/{os.environ['TENANTGATE_TENANT']}/audit/stream"


async def follow(token: str, next_seq: int | None) -> None:
    while True:
        query = f"?from_seq={next_seq}" if next_seq else ""  # resume where we stopped
        try:
            async with connect(URL + query, subprotocols=["bearer", token]) as ws:
                async for raw in ws:
                    message = json.loads(raw)
                    event = message.get("event", {})
                    if event:
                        print(event["seq"], event["time"], event["action"], event["actor_subject"])
                    next_seq = message.get("next_seq") or event["seq"] + 1
        except ConnectionClosed as closed:
            if closed.rcvd and closed.rcvd.code == 1008:  # expired, revoked, suspended
                sys.exit(f"closed: {closed.rcvd.reason} (get a new token, resume at {next_seq})")
        await asyncio.sleep(1)  # 1013 (fell behind), a restart, a network cut: resume


asyncio.run(follow(os.environ["TENANTGATE_TOKEN"], int(sys.argv[1]) if sys.argv[1:] else None))
