"""The key hash beside each stored event_id finds resends, and is never trusted blindly."""

from __future__ import annotations

import duckdb

from meterctl.store.duckdb import key_hashes
from meterctl.store.duckdb.connect import migrations
from tests.conftest import event, ingest_paths, jsonl, opened, scalar


def test_a_resend_of_a_stored_event_is_found_through_its_key_hash(write, run_ingest, con):
    run_ingest(write("a.jsonl", jsonl(event("e1"), event("e2", quantity=2))))
    assert scalar(con, "SELECT count(*) FROM events WHERE id_hash = hash(event_id)") == 2
    result = run_ingest(write("b.jsonl", jsonl(event("e1"), event("e2", quantity=3), event("e3"))))
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 1, 1)


def test_a_stored_hash_equal_to_a_new_ids_hash_is_not_taken_for_a_duplicate(write, run_ingest, con):
    run_ingest(write("a.jsonl", jsonl(event("stored"))))
    # What a collision looks like from the new id's side: a stored event with its hash.
    con.execute("UPDATE events SET id_hash = hash('new')")
    result = run_ingest(write("b.jsonl", jsonl(event("new", quantity=5))))
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 0, 0)
    assert scalar(con, "SELECT quantity FROM events WHERE event_id = 'new'") == 5


def test_hashes_from_another_duckdb_version_are_recomputed_before_ingesting(write, run_ingest, con):
    run_ingest(write("a.jsonl", jsonl(event("e1"), event("e2"))))
    # What a store written by a DuckDB whose hash() differs would look like.
    con.execute("UPDATE events SET id_hash = id_hash + 1")
    con.execute("UPDATE event_key_hash SET probe = 'another hash function'")
    result = run_ingest(write("b.jsonl", jsonl(event("e1"), event("e2", quantity=9))))
    assert (result.accepted, result.duplicates, result.conflicts) == (0, 1, 1)
    assert scalar(con, "SELECT count(*) FROM events WHERE id_hash <> hash(event_id)") == 0
    assert scalar(con, "SELECT probe FROM event_key_hash") == key_hashes.current_probe(con)


def test_events_stored_before_the_key_hash_existed_get_one(write, run_ingest, con):
    run_ingest(write("a.jsonl", jsonl(event("e1"), event("e2"))))
    con.execute("UPDATE events SET id_hash = NULL")
    result = run_ingest(write("b.jsonl", jsonl(event("e1"))))
    assert (result.accepted, result.duplicates) == (0, 1)
    assert scalar(con, "SELECT count(*) FROM events WHERE id_hash IS NULL") == 0


def test_a_current_store_is_not_rehashed(write, run_ingest, con):
    run_ingest(write("a.jsonl", jsonl(event("e1"))))
    assert key_hashes.ensure_key_hashes(con) == 0


def test_a_store_from_before_the_key_hash_is_upgraded_on_the_next_ingest(tmp_path, write):
    db = tmp_path / "old.duckdb"
    old = duckdb.connect(str(db))
    old.execute("CREATE TABLE schema_migrations (version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    for migration in migrations():
        if migration.version < 5:  # the schema as the previous meterctl left it
            old.execute(migration.sql)
            old.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [migration.version, migration.name])
    old.execute("INSERT INTO ingest_batches VALUES (1, 'old.jsonl', NULL, 'jsonl', 'x', 0, NULL, now(), now(), 1, 0, 1, 0, 0, 0, '0.0')")
    old.execute("INSERT INTO events VALUES ('e1', 'cus_1', 'api_call', TIMESTAMPTZ '2026-10-01 00:00:00+00', 1, NULL, 1, 1)")
    old.close()

    store = opened(db)
    try:
        assert scalar(store.con, "SELECT count(*) FROM events WHERE id_hash IS NULL") == 1  # migrated, not yet hashed
        result = ingest_paths(store, write("new.jsonl", jsonl(event("e1", timestamp="2026-10-01T00:00:00Z"), event("e2"))))
        assert (result.accepted, result.duplicates) == (1, 1)
        assert scalar(store.con, "SELECT count(*) FROM events WHERE id_hash IS NULL OR id_hash <> hash(event_id)") == 0
    finally:
        store.close()
