"""The key hash stored beside every event_id, and keeping it valid.

Deduplication finds the stored events that share an id with a chunk by joining on
`events.id_hash` (DuckDB's 64-bit `hash(event_id)`) and compares full ids only for those
matches. A hash match is never taken as proof of a duplicate; a missed match would be, so
every stored hash must come from the same hash function that hashes the chunk. DuckDB does
not promise `hash()` is stable across its versions: the store records the hashes of fixed
probe strings, and when the running DuckDB hashes them differently, or any event lacks its
hash, the column is recomputed before anything is ingested.
"""

from __future__ import annotations

import duckdb

from meterctl.store.duckdb.transaction import transaction

# Strings of the lengths and kinds hash() treats differently: empty, inlined (≤ 12 bytes),
# longer, very long, and non-ASCII.
_PROBE = (
    "SELECT CAST([hash(''), hash('e'), hash('evt_0000001'), hash('evt_000000000001'),"
    " hash('cus_000042 llm_tokens 2026-10-01T00:00:00Z'), hash(repeat('meterctl', 40)),"
    " hash('événement ✓ 计量 😀')] AS VARCHAR)"
)


def current_probe(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute(_PROBE).fetchall()[0][0]


def ensure_key_hashes(con: duckdb.DuckDBPyConnection) -> int:
    """Make every stored id_hash current; return how many events were (re)hashed.

    Runs in its own transaction. On a store whose hashes are current this costs two small
    queries (the NULL count is answered from column statistics for the most part).
    """
    probe = current_probe(con)
    recorded = [row[0] for row in con.execute("SELECT probe FROM event_key_hash").fetchall()]
    stale = recorded != [probe]
    with transaction(con):
        if stale:
            count = con.execute("UPDATE events SET id_hash = hash(event_id)").fetchall()[0][0]
            con.execute("DELETE FROM event_key_hash")
            con.execute("INSERT INTO event_key_hash VALUES (?, now())", [probe])
        else:
            count = con.execute(
                "UPDATE events SET id_hash = hash(event_id) WHERE id_hash IS NULL"
            ).fetchall()[0][0]
    return int(count)
