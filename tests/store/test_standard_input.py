"""Standard input that a pipe delivers a byte at a time is still told apart by content:
gzip and Parquet (which is kept in a file first, Parquet needs to seek)."""

from __future__ import annotations

import gzip
import io
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from meterctl.events import IngestOptions
from meterctl.ingest import ingest
from meterctl.io.sources import Source
from tests.conftest import NOW, event, jsonl, opened


class _Trickle(io.RawIOBase):
    """A pipe that delivers one byte per read, as a slow writer might."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        if not self._data:
            return 0
        target[0] = self._data[0]
        self._data = self._data[1:]
        return 1


def _ingest_trickled_stdin(tmp_path, monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Trickle(data))))
    store = opened(tmp_path / "store.duckdb")
    try:
        return ingest(store.events, [Source("-", None)], IngestOptions(now=NOW)).files[0]
    finally:
        store.close()


def test_gzip_on_a_pipe_that_delivers_a_byte_at_a_time_is_still_gzip(tmp_path, monkeypatch):
    content = b"".join(jsonl(event(f"e{i}")).encode() for i in range(50))
    outcome = _ingest_trickled_stdin(tmp_path, monkeypatch, gzip.compress(content))
    assert (outcome.format, outcome.read, outcome.accepted) == ("jsonl.gz", 50, 50)

def test_parquet_on_a_pipe_that_delivers_a_byte_at_a_time_is_still_parquet(tmp_path, monkeypatch):
    sink = io.BytesIO()
    pq.write_table(pa.table({"event_id": ["p1", "p2"], "customer_id": ["c1", "c1"], "event_name": ["api_call"] * 2,
                             "timestamp": ["2026-10-01T00:00:00Z"] * 2}), sink)
    outcome = _ingest_trickled_stdin(tmp_path, monkeypatch, sink.getvalue())
    assert (outcome.format, outcome.accepted) == ("parquet", 2)
    store = opened(tmp_path / "store.duckdb")
    try:  # the file standard input was kept in while it was read is gone: no path to record
        assert store.con.execute("SELECT source, source_path, size_bytes FROM ingest_batches").fetchall() == [
            ("-", None, len(sink.getvalue()))]
    finally:
        store.close()
