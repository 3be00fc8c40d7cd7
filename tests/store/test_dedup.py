"""Nothing is counted twice: identical resends are dropped, different payloads are conflicts."""

from __future__ import annotations

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meterctl.errors import InputNotFoundError
from tests.conftest import SAMPLE, balanced, event, ingest_paths, jsonl, opened, scalar


def test_an_identical_resend_in_the_same_file_is_counted_and_dropped(write, run_ingest, con):
    result = run_ingest(write("a.jsonl", jsonl(event("e1"), event("e2"), event("e1"))))
    assert (result.read, result.accepted, result.duplicates, result.conflicts) == (3, 2, 1, 0)
    assert scalar(con, "SELECT count(*) FROM events") == 2


def test_a_resend_with_another_payload_is_a_conflict_and_the_first_stays_billed(write, run_ingest, con):
    result = run_ingest(write("a.jsonl", jsonl(event("e1", quantity=5), event("e1", quantity=7))))
    assert (result.accepted, result.conflicts) == (1, 1)
    assert scalar(con, "SELECT quantity FROM events WHERE event_id = 'e1'") == 5
    [(event_id, billed_line, line, billed_hash, new_hash, raw)] = con.execute(
        "SELECT event_id, billed_line_no, line_no, billed_hash, new_hash, raw FROM conflicts"
    ).fetchall()
    assert (event_id, billed_line, line) == ("e1", 1, 2)
    assert billed_hash != new_hash and len(billed_hash) == 32
    assert json.loads(raw)["quantity"] == 7


def test_resends_across_files_and_runs(write, run_ingest, con):
    first = run_ingest(write("a.jsonl", jsonl(event("e1"), event("e2"))))
    second = run_ingest(write("b.jsonl", jsonl(event("e2"), event("e3"), event("e1", quantity=9))))
    assert (first.accepted, second.accepted, second.duplicates, second.conflicts) == (2, 1, 1, 1)
    [(billed_source, new_source)] = con.execute(
        "SELECT bb.source, nb.source FROM conflicts c "
        "JOIN ingest_batches bb ON bb.batch_id = c.billed_batch_id JOIN ingest_batches nb ON nb.batch_id = c.batch_id"
    ).fetchall()
    assert billed_source.endswith("a.jsonl") and new_source.endswith("b.jsonl")


def test_the_same_payload_written_differently_is_an_identical_duplicate(write, run_ingest):
    original = event("e1", timestamp="2026-10-05T10:00:00Z", quantity=1454, properties={"model": "embed", "region": "eu"})
    rewritten = event(
        "e1", timestamp="2026-10-05T12:00:00+02:00", quantity="1454.000", properties={"region": "eu", "model": "embed"}
    )
    as_epoch_ms = event("e1", timestamp=1791194400000, quantity=1454.0, properties={"model": "embed", "region": "eu"})
    result = run_ingest(write("a.jsonl", jsonl(original, rewritten, as_epoch_ms)))
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 2, 0)


def test_an_empty_properties_object_equals_no_properties(write, run_ingest):
    result = run_ingest(write("a.jsonl", jsonl(event("e1"), event("e1", properties={}))))
    assert (result.accepted, result.duplicates) == (1, 1)


def test_properties_that_repeat_a_key_are_compared_as_written(write, run_ingest):
    line = '{"event_id":"e1","customer_id":"c","event_name":"n","timestamp":"2026-10-05T10:00:00Z","properties":%s}\n'
    first = run_ingest(write("a.jsonl", line % '{"m":"a","m":"a"}'))
    again = run_ingest(write("b.jsonl", line % '{"m":"a","m":"a"}' + line % '{"m":"b","m":"b"}'))
    assert first.accepted == 1
    assert (again.duplicates, again.conflicts) == (1, 1)


def test_repeats_of_a_conflicting_version_are_each_kept_as_conflicts(write, run_ingest, con):
    lines = [event("e1", quantity=1), event("e1", quantity=2), event("e1", quantity=2), event("e1", quantity=1)]
    result = run_ingest(write("a.jsonl", jsonl(*lines)))
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 1, 2)
    assert scalar(con, "SELECT count(*) FROM conflicts") == 2


def test_an_unchanged_file_named_again_is_skipped_without_being_parsed(write, run_ingest, monkeypatch):
    plain = write("a.jsonl", jsonl(event("e1"), event("e2")))
    packed = write("b.jsonl.gz", gzip.compress(jsonl(event("e3")).encode()))
    run_ingest(plain, packed)

    def no_parsing(self):
        raise AssertionError(f"{self.source.name} was parsed again")

    monkeypatch.setattr("meterctl.ingest.LineReader.chunks", no_parsing)
    again = run_ingest(plain, packed)
    assert again.skipped_files == 2


def test_a_file_with_the_same_content_is_skipped_as_a_whole(write, run_ingest, con):
    text = jsonl(event("e1"), event("e2"))
    first = run_ingest(write("a.jsonl", text))
    again = run_ingest(write("copy-of-a.jsonl", text))
    assert again.skipped_files == 1
    assert again.files[0].skip_reason.startswith("same content already ingested as batch 1")
    assert (again.read, again.accepted) == (0, 0)
    assert scalar(con, "SELECT count(*) FROM ingest_batches") == 1
    assert first.files[0].content_sha256 == again.files[0].content_sha256


def test_the_same_file_named_twice_in_one_run_is_read_once(write, run_ingest):
    path = write("a.jsonl", jsonl(event("e1")))
    result = run_ingest(path, path)
    assert len(result.files) == 1


def test_duplicates_are_found_across_chunks_of_one_file(write, run_ingest, con):
    records = [event(f"e{i}", quantity=i) for i in range(500)]
    records += [event(f"e{i}", quantity=i) for i in range(0, 500, 5)]  # 100 resends
    records += [event("e7", quantity=999)]  # a conflict with an early chunk
    result = run_ingest(write("a.jsonl", jsonl(*records)), chunk_bytes=4096)
    assert (result.read, result.accepted, result.duplicates, result.conflicts) == (601, 500, 100, 1)
    assert balanced(result)


def _store_contents(con):
    return {
        "events": con.execute(
            "SELECT event_id, customer_id, event_name, epoch_us(ts), quantity, CAST(properties AS VARCHAR) FROM events ORDER BY ALL"
        ).fetchall(),
        "dead": con.execute("SELECT reason, raw FROM dead_letters ORDER BY ALL").fetchall(),
    }


def _totals(con):
    return con.execute(
        "SELECT sum(lines_read), sum(accepted), sum(duplicates), sum(conflicts), sum(dead_lettered) FROM ingest_batches"
    ).fetchall()[0]


def test_a_then_b_gives_the_same_store_as_b_then_a(tmp_path, write):
    a = write("a.jsonl", jsonl(event("e1"), event("e2"), "{broken", event("e3", quantity="2.50")))
    b = write("b.jsonl", jsonl(event("e3", quantity=2.5), event("e4"), event("e1"), event("e5", customer_id=3)))
    contents = []
    for order in ([a, b], [b, a]):
        store = opened(tmp_path / f"{order[0].stem}-first.duckdb")
        for path in order:
            ingest_paths(store, path)
        contents.append((_store_contents(store.con), _totals(store.con)))
        store.close()
    assert contents[0] == contents[1]


def test_ingesting_twice_equals_ingesting_once(write, run_ingest, con):
    path = write("a.jsonl", jsonl(event("e1"), event("e1"), "nope", event("e2", quantity=3)))
    run_ingest(path)
    once = (_store_contents(con), _totals(con))
    second = run_ingest(path)
    assert second.skipped_files == 1
    assert (_store_contents(con), _totals(con)) == once


def test_gzip_and_directories(write, run_ingest, tmp_path):
    plain = jsonl(event("e1"), event("e2"))
    (tmp_path / "in").mkdir()
    with gzip.open(tmp_path / "in" / "day1.jsonl.gz", "wt") as handle:
        handle.write(plain)
    write("in/day2.ndjson", jsonl(event("e3")))
    write("in/notes.txt", "not events")
    result = run_ingest(tmp_path / "in")
    assert [f.format for f in result.files] == ["jsonl.gz", "jsonl"]
    assert result.accepted == 3
    # A link to a file that is gone is a missing input, found before anything is written.
    (tmp_path / "in" / "day3.jsonl").symlink_to(tmp_path / "moved-away.jsonl")
    for argument in (tmp_path / "in", tmp_path / "in" / "*.jsonl"):
        with pytest.raises(InputNotFoundError, match="day3.jsonl: a symbolic link to a file that does not exist"):
            run_ingest(argument)


def test_parquet_rows_are_events_and_duplicates_of_the_same_jsonl(write, run_ingest, tmp_path, con):
    table = pa.table({
        "event_id": ["p1", "p2", "p3"],
        "customer_id": ["c1", "c1", None],
        "event_name": ["llm_tokens"] * 3,
        "timestamp": pa.array([1791194400000000] * 3, pa.timestamp("us", tz="UTC")),
        "quantity": pa.array([1200, 5, 1], pa.int64()),
        "properties": ['{"model":"embed"}', '{"model":"gpt"}', None],
    })
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    first = run_ingest(path)
    assert (first.read, first.accepted, first.dead_lettered) == (3, 2, 1)
    assert "missing required field 'customer_id'" in scalar(con, "SELECT reason FROM dead_letters")
    assert scalar(con, "SELECT line_no FROM dead_letters") == 3
    same = write("same.jsonl", jsonl(
        event("p1", customer_id="c1", event_name="llm_tokens", timestamp="2026-10-05T10:00:00Z", quantity=1200,
              properties={"model": "embed"}),
    ))
    second = run_ingest(same)
    assert (second.accepted, second.duplicates, second.conflicts) == (0, 1, 0)


def test_parquet_columns_of_every_arrow_kind_are_read_exactly(tmp_path, run_ingest, con):
    from decimal import Decimal

    properties = ['{"model":"embed"}', '{"model":"gpt"}']
    table = pa.table({
        "event_id": ["d1", "d2"], "customer_id": ["c1", "c1"], "event_name": ["n", "n"],
        "timestamp": ["2026-10-05T10:00:00Z"] * 2,
        # exact decimals (a double would give 12345678901234568 and 0.3)
        "quantity": pa.array([Decimal("12345678901234567.123456789"), Decimal("0.300000000000000010")], pa.decimal128(38, 18)),
        # JSON text held as a dictionary, as pandas writes a categorical column
        "properties": pa.array(properties).dictionary_encode(),
        # types DuckDB cannot scan as they are, in columns the contract does not read
        "ratio": pa.array([1.5, 2.5], pa.float16()),
        "big": pa.array([Decimal("1.5"), Decimal("2")], pa.decimal256(60, 10)),
    })
    path = tmp_path / "kinds.parquet"
    pq.write_table(table, path)
    result = run_ingest(path)
    assert (result.accepted, result.dead_lettered) == (2, 0), con.execute("SELECT reason FROM dead_letters").fetchall()
    assert con.execute("SELECT quantity, properties FROM events ORDER BY event_id").fetchall() == [
        (Decimal("12345678901234567.123456789"), properties[0]), (Decimal("0.30000000000000001"), properties[1])]


def test_parquet_properties_held_as_a_struct_equal_the_jsonl_lines_they_came_from(tmp_path, run_ingest, write, con):
    # pyarrow turns a column of dicts into one struct of every key: each row gets nulls for
    # the keys it did not have, which must not make an identical resend a conflict.
    records = [event("s1", properties={"model": "a"}), event("s2", properties={"region": "eu", "n": {"x": 1}}),
               event("s3")]
    run_ingest(write("events.jsonl", jsonl(*records)))
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    assert pa.types.is_struct(pq.read_schema(path).field("properties").type)
    result = run_ingest(path)
    assert (result.read, result.duplicates, result.conflicts, result.dead_lettered) == (3, 3, 0, 0)


def test_a_parquet_column_named_like_the_row_numbers_is_data_not_row_numbers(tmp_path, run_ingest, con):
    table = pa.table({
        "event_id": ["r1", "r2"], "customer_id": ["c1", None], "event_name": ["n", "n"],
        "timestamp": ["2026-10-05T10:00:00Z"] * 2,
        "__line_no": pa.array([70, 80], pa.int64()), "__LINE_NO_": ["a", "b"],
    })
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path)
    result = run_ingest(path)
    assert (result.accepted, result.dead_lettered) == (1, 1)
    assert con.execute("SELECT line_no FROM events").fetchall() == [(1,)]
    line_no, raw = con.execute("SELECT line_no, raw FROM dead_letters").fetchall()[0]
    assert line_no == 2 and json.loads(raw)["__line_no"] == 80 and json.loads(raw)["__LINE_NO_"] == "b"


def test_the_sample_parquet_file_duplicates_the_sample_jsonl(run_ingest, tmp_path):
    expected = json.loads((SAMPLE / "events-2026-10.expected.json").read_text())["expected"]
    jsonl_result = run_ingest(SAMPLE / "events-2026-10.jsonl")
    parquet_copy = tmp_path / "copy.parquet"
    shutil.copy(SAMPLE / "events-2026-10.parquet", parquet_copy)
    parquet_result = run_ingest(parquet_copy)
    assert parquet_result.duplicates == expected["accepted"]
    assert (parquet_result.accepted, parquet_result.conflicts, parquet_result.dead_lettered) == (0, 0, 0)
    assert jsonl_result.accepted == expected["accepted"]
