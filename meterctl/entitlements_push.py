"""Entitlement states into Redis, where an API gateway reads them in microseconds:

    HSET meterctl:entitlements:<customer_id> <feature> <json of the check answer>
    SET  meterctl:entitlements:updated_at <when the states were taken>

Each customer's hash is written under a temporary key and renamed over the real one, so a
reader sees the old hash or the new one, never a half-written one, and a feature the
customer no longer has is gone with the old hash. The hashes of customers with no state
any more are deleted, so Redis never holds a stale "allowed". One pipeline, one round trip
per batch of commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from meterctl.entitlements import EntitlementState
from meterctl.errors import UnavailableError
from meterctl.export.entitlements import state_document
from meterctl.instants import iso

PREFIX = "meterctl:entitlements:"
UPDATED_AT = PREFIX + "updated_at"


@dataclass(frozen=True)
class PushResult:
    customers: int
    states: int
    removed: int  # hashes of customers that no longer have any state
    updated_at: str


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…@{rest.rpartition('@')[2]}"


def push(states: Sequence[EntitlementState], url: str, at: datetime) -> PushResult:
    import redis

    by_customer: dict[str, dict[str, str]] = {}
    for state in states:
        by_customer.setdefault(state.answer.customer_id, {})[state.answer.feature] = json.dumps(
            state_document(state), separators=(",", ":"), ensure_ascii=False)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        stale = {key.decode() for key in client.scan_iter(match=PREFIX + "*", count=1000)}
        stale -= {UPDATED_AT} | {PREFIX + customer for customer in by_customer}
        pipe = client.pipeline(transaction=False)
        for customer, fields in sorted(by_customer.items()):
            key = PREFIX + customer
            pipe.delete(key + ":new")
            pipe.hset(key + ":new", mapping=cast(Any, fields))  # str → str: what redis-py takes
            pipe.rename(key + ":new", key)
        if stale:
            pipe.delete(*sorted(stale))
        pipe.set(UPDATED_AT, iso(at))
        pipe.execute()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise UnavailableError(f"Redis at {_shown(url)} cannot be reached: {error}; nothing was changed there "
                               "beyond what it had taken (run the push again)") from None
    except redis.exceptions.RedisError as error:
        raise UnavailableError(f"Redis at {_shown(url)} refused the push: {error}") from None
    except ValueError as error:  # a URL redis-py cannot read
        raise UnavailableError(f"--redis: '{_shown(url)}' is not a Redis URL such as redis://localhost:6379/0 "
                               f"({error})") from None
    return PushResult(len(by_customer), len(states), len(stale), iso(at))
