"""Every record that fails the event contract lands in dead_letters with a reason and its raw text."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.conftest import balanced, event, jsonl, scalar


def dead_letters(con):
    return con.execute("SELECT line_no, reason, raw FROM dead_letters ORDER BY line_no").fetchall()


def ingest_one(write, run_ingest, line: dict | str):
    path = write("one.jsonl", jsonl(line))
    result = run_ingest(path)
    assert balanced(result)
    return result.files[0]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"event_id": "e1", "customer_id": "c"', "malformed JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"just a string"', "not a JSON object"),
        ("null", "not a JSON object"),
        (event("e1", customer_id=None), "missing required field 'customer_id'"),
        (event("e1", event_name=None), "missing required field 'event_name'"),
        (event("e1", timestamp=None), "missing required field 'timestamp'"),
        (event(None), "missing required field 'event_id'"),
        (event(42), "field 'event_id' must be a string"),
        (event("e1", customer_id=7), "field 'customer_id' must be a string"),
        (event("e1", customer_id=""), "field 'customer_id' must not be empty"),
        (event("e1", customer_id=" " * 40), "field 'customer_id' must not be empty"),
        (event("e1", customer_id="\t"), "field 'customer_id' must not be empty"),
        (event(" " * 14 + "\r\n", customer_id="c"), "field 'event_id' must not be empty"),
        (event("e1", event_name=["x"]), "field 'event_name' must be a string"),
        (event("e1", timestamp="2026-10-05"), "is not an RFC 3339 date-time"),
        (event("e1", timestamp="2026-02-30T00:00:00Z"), "is not an RFC 3339 date-time"),
        (event("e1", timestamp="yesterday"), "is not an RFC 3339 date-time"),
        (event("e1", timestamp="2026-10-05T10:00:00 Europe/Paris"), "is not an RFC 3339 date-time"),
        (event("e1", timestamp=True), "must be an RFC 3339 string or an epoch number"),
        (event("e1", timestamp="2026-10-01T00:00:00+25:00"), "has a UTC offset beyond ±23:59"),
        (event("e1", timestamp="2026-10-01T00:00:00-99:00"), "has a UTC offset beyond ±23:59"),
        (event("e1", timestamp="2026-10-01T00:00:00+23:60"), "has a UTC offset beyond ±23:59"),
        (event("e1", timestamp="2026-10-01T00:00:00+2400"), "has a UTC offset beyond ±23:59"),
        (event("e1", timestamp="2026-10-01T00:00:00+05:30:15"), "is not an RFC 3339 date-time"),
        (event("e1", timestamp="2026-10-01T24:00:00Z"), "is not an RFC 3339 date-time"),
        (event("e1", timestamp="2026-10-01T12:60:00Z"), "is not an RFC 3339 date-time"),
        (event("e1", customer_id="c" * 257), "field 'customer_id' is 257 characters long; at most 256"),
        (event("e" * 300_000), "field 'event_id' is 300000 characters long; at most 256 are allowed (eeee"),
        (event("e1", event_name="n" * 257), "field 'event_name' is 257 characters long"),
        (event("e1", timestamp="2099-01-01T00:00:00Z"), "after the ingest time"),
        (event("e1", quantity="lots"), "is not a finite decimal number"),
        (event("e1", quantity="1_000"), "is not a finite decimal number"),
        (event("e1", quantity="0x10"), "is not a finite decimal number"),
        (event("e1", quantity="NaN"), "is not a finite decimal number"),
        ('{"event_id":"e1","customer_id":"c","event_name":"n","timestamp":"2026-10-05T10:00:00Z","quantity":NaN}',
         "is not a finite decimal number"),
        ('{"event_id":"e1","customer_id":"c","event_name":"n","timestamp":"2026-10-05T10:00:00Z","quantity":Infinity}',
         "is not a finite decimal number"),
        ('{"event_id":"e1","customer_id":"c","event_name":"n","timestamp":"2026-10-05T10:00:00Z","quantity":1e400}',
         "is not a finite decimal number"),
        (event("e1", quantity="1e-30"), "would be rounded"),
        (event("e1", quantity="0.1234567890123456789"), "would be rounded"),
        (event("e1", quantity="123456789012345678901"), "is not a finite decimal number"),
        (event("e1", quantity=True), "quantity must be a number or a numeric string, got BOOLEAN"),
        (event("e1", quantity={"v": 1}), "quantity must be a number or a numeric string, got OBJECT"),
        (event("e1", properties=["model"]), "field 'properties' must be a JSON object, got ARRAY"),
        (event("e1", properties="gpt"), "field 'properties' must be a JSON object"),
    ],
)
def test_a_bad_record_is_dead_lettered_with_its_reason_and_raw_text(write, run_ingest, con, line, reason):
    outcome = ingest_one(write, run_ingest, line)
    assert (outcome.read, outcome.accepted, outcome.dead_lettered) == (1, 0, 1)
    [(line_no, stored_reason, raw)] = dead_letters(con)
    assert line_no == 1
    assert reason in stored_reason
    assert raw == (line if isinstance(line, str) else json.dumps(line))


@pytest.mark.parametrize(
    ("timestamp", "expected_utc"),
    [
        ("2026-10-05T10:00:00Z", "2026-10-05 10:00:00"),
        ("2026-10-05T12:00:00+02:00", "2026-10-05 10:00:00"),
        ("2026-10-05T05:30:00-0430", "2026-10-05 10:00:00"),
        ("2026-10-05T10:00:00", "2026-10-05 10:00:00"),  # no offset = UTC
        ("2026-10-05 10:00:00Z", "2026-10-05 10:00:00"),
        ("2026-10-05t10:00:00z", "2026-10-05 10:00:00"),
        ("2026-10-05T10:00:00.123456Z", "2026-10-05 10:00:00.123456"),
        ("2026-10-05T10:00:00+23:59", "2026-10-04 10:01:00"),  # the widest offset RFC 3339 allows
        ("2026-10-05T10:00:00-23:59", "2026-10-06 09:59:00"),
        (1791194400, "2026-10-05 10:00:00"),  # epoch seconds
        (1791194400123, "2026-10-05 10:00:00.123"),  # epoch milliseconds
        (1791194400.5, "2026-10-05 10:00:00.5"),
        ("1850-01-01T00:00:00Z", "1850-01-01 00:00:00"),  # no lower bound by default
    ],
)
def test_timestamps_are_read_as_instants(write, run_ingest, con, timestamp, expected_utc):
    outcome = ingest_one(write, run_ingest, event("e1", timestamp=timestamp))
    assert outcome.accepted == 1
    stored = scalar(con, "SELECT strftime(ts, '%Y-%m-%d %H:%M:%S.%f') FROM events")
    assert stored.rstrip("0").rstrip(".") == expected_utc.rstrip("0").rstrip(".") or stored.startswith(expected_utc)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (5, Decimal("5")),
        ("5", Decimal("5")),
        (0.0004, Decimal("0.0004")),
        ("0.000000000000000001", Decimal("1E-18")),
        ("12345678901234567890.123456789012345678", Decimal("12345678901234567890.123456789012345678")),
        ("-2.5", Decimal("-2.5")),
        ("1e3", Decimal("1000")),
        ("1.50000000000000000000000", Decimal("1.5")),
        (None, None),
    ],
)
def test_quantities_are_exact_decimals(write, run_ingest, con, quantity, expected):
    outcome = ingest_one(write, run_ingest, event("e1", quantity=quantity))
    assert outcome.accepted == 1
    assert scalar(con, "SELECT quantity FROM events") == expected


def _raw_event(event_id: str, quantity: str, extra: str = "") -> str:
    return ('{"event_id":"' + event_id + '","customer_id":"c","event_name":"n","timestamp":"2026-10-05T10:00:00Z",'
            '"quantity":' + quantity + extra + "}")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("12345678901234567.5", Decimal("12345678901234567.5")),  # a double would make it ...568
        ("0.30000000000000001", Decimal("0.30000000000000001")),  # a double would make it 0.3
        ("2.5", Decimal("2.5")),
        ("1.5e3", Decimal("1500")),
        ("-2.5E-3", Decimal("-0.0025")),
        ('"1.99999999999999999e1"', Decimal("19.9999999999999999")),
        ("1", Decimal("1")),
    ],
)
def test_a_quantity_is_read_as_written_never_through_a_double(write, run_ingest, con, written, expected):
    # The same number beside it in properties, however it is spelled there, does not confuse
    # which one is the quantity.
    spellings = dict.fromkeys((written, str(expected), f"{expected}0"))  # 1.5e3, 1500, 15000: only the first is equal
    for extra in ("", *(',"properties":{"quantity":' + s + "}" for s in spellings if s == written or "." in s)):
        con.execute("DELETE FROM events")
        outcome = ingest_one(write, run_ingest, _raw_event("e" + str(len(extra)), written, extra))
        assert outcome.accepted == 1, dead_letters(con)
        assert scalar(con, "SELECT quantity FROM events") == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (_raw_event("e1", '"1.99999999999999999999e1"'), "would be rounded"),
        (_raw_event("e1", "1.0000000000000000000000001e1"), "quantity 1.0000000000000000000000001e1 would be rounded"),
        (_raw_event("e1", "0.30000000000000001", ',"properties":{"quantity":0.3}'), "several \"quantity\" members"),
        (_raw_event("e1", "0.5").replace('"quantity"', '"quantit\\u0079"'), "cannot be read exactly"),
    ],
)
def test_a_quantity_that_cannot_be_read_exactly_is_dead_lettered(write, run_ingest, con, line, reason):
    outcome = ingest_one(write, run_ingest, line)
    assert outcome.dead_lettered == 1
    assert reason in dead_letters(con)[0][1]


def test_quantities_that_differ_beyond_double_precision_are_a_conflict_not_a_duplicate(write, run_ingest, con):
    path = write("two.jsonl", _raw_event("e1", "12345678901234567.4") + "\n" + _raw_event("e1", "12345678901234567.6") + "\n")
    result = run_ingest(path)
    assert (result.accepted, result.duplicates, result.conflicts) == (1, 0, 1)


def test_identifiers_of_256_characters_are_accepted_and_a_long_one_is_shown_shortened(write, run_ingest, con):
    outcome = ingest_one(write, run_ingest, event("e" * 256, customer_id="c" * 256, event_name="n" * 256))
    assert outcome.accepted == 1
    ingest_one(write, run_ingest, event("e2", timestamp="9" * 100_000))
    [(_, reason, _)] = dead_letters(con)
    assert len(reason) < 200 and "…" in reason


def test_a_timestamp_just_inside_the_future_bound_is_accepted(write, run_ingest, con):
    path = write(
        "f.jsonl",
        jsonl(
            event("ok", timestamp="2026-11-23T12:04:59Z"),
            event("late", timestamp="2026-11-23T12:05:01Z"),
        ),
    )
    result = run_ingest(path)
    assert (result.accepted, result.dead_lettered) == (1, 1)
    assert scalar(con, "SELECT event_id FROM events") == "ok"


def test_max_age_rejects_old_events_only_when_asked(write, run_ingest, con):
    path = write("old.jsonl", jsonl(event("old", timestamp="2020-01-01T00:00:00Z"), event("new")))
    result = run_ingest(path, max_age=timedelta(days=365))
    assert (result.accepted, result.dead_lettered) == (1, 1)
    assert "older than the maximum age" in dead_letters(con)[0][1]


def test_a_maximum_age_of_zero_is_a_bound_not_no_bound(write, run_ingest, con):
    path = write("old.jsonl", jsonl(event("old", timestamp="2020-01-01T00:00:00Z")))
    assert run_ingest(path, max_age=timedelta(0)).dead_lettered == 1


def test_chunks_with_and_without_bad_lines_each_count_their_own(write, run_ingest, con):
    # 4 KB chunks hold about 30 lines: some chunks are all clean, others carry a line the
    # full rule set must judge (malformed, a numeric string, missing fields, not an object).
    clean = [event(f"e{i}") for i in range(200)]
    lines = (clean[:40] + ["{not json"] + clean[40:140] + [event("s1", quantity="2.5")]
             + clean[140:170] + ['{"event_id": "x1"}'] + clean[170:] + ["[1]"])
    result = run_ingest(write("a.jsonl", jsonl(*lines)), chunk_bytes=4096)
    assert (result.read, result.accepted, result.dead_lettered) == (204, 201, 3)
    assert balanced(result)
    assert scalar(con, "SELECT list(line_no ORDER BY line_no) FROM dead_letters") == [41, 173, 204]
    assert scalar(con, "SELECT quantity FROM events WHERE event_id = 's1'") == Decimal("2.5")
    assert scalar(con, "SELECT count(DISTINCT event_id) FROM events") == 201


def test_invalid_utf8_is_kept_with_its_bytes_escaped(write, run_ingest, con):
    good = jsonl(event("e1")).encode()
    path = write("bad.jsonl", good + b'{"event_id":"e2","customer_id":"\xff\xfe"}\n')
    result = run_ingest(path)
    assert (result.read, result.accepted, result.dead_lettered) == (2, 1, 1)
    [(line_no, reason, raw)] = dead_letters(con)
    assert (line_no, reason) == (2, "not valid UTF-8")
    assert raw == '{"event_id":"e2","customer_id":"\\xff\\xfe"}'


def test_bom_crlf_and_blank_lines(write, run_ingest, con):
    text = "\ufeff" + json.dumps(event("e1")) + "\r\n\r\n   \n" + json.dumps(event("e2")) + "\r\n\n"
    result = run_ingest(write("crlf.jsonl", text))
    assert (result.read, result.accepted, result.blank_lines, result.dead_lettered) == (2, 2, 3, 0)
    assert con.execute("SELECT event_id, line_no FROM events ORDER BY 1").fetchall() == [("e1", 1), ("e2", 4)]


def test_a_last_line_without_newline_is_read(write, run_ingest):
    result = run_ingest(write("nonl.jsonl", jsonl(event("e1")) + json.dumps(event("e2"))))
    assert (result.read, result.accepted) == (2, 2)


def test_an_empty_file_reads_nothing(write, run_ingest):
    result = run_ingest(write("empty.jsonl", ""))
    assert (result.read, result.accepted, result.skipped_files) == (0, 0, 0)


def test_properties_are_kept_and_extra_fields_ignored(write, run_ingest, con):
    record = event("e1", properties={"model": "gpt-large", "region": "eu", "n": 3}, extra="ignored")
    ingest_one(write, run_ingest, record)
    assert json.loads(scalar(con, "SELECT properties FROM events")) == {"model": "gpt-large", "region": "eu", "n": 3}


def test_cloudevents_map_onto_the_contract(write, run_ingest, con):
    cloud = {
        "specversion": "1.0", "id": "42", "source": "/edge/eu", "type": "llm_tokens",
        "subject": "cus_9", "time": "2026-10-05T10:00:00Z",
        "data": {"quantity": 1200, "properties": {"model": "embed"}},
    }
    flat_data = {**cloud, "id": "43", "data": {"quantity": "7", "model": "gpt", "customer_id": "x"}}
    no_subject = {**cloud, "id": "44", "subject": None, "data": {"customer_id": "cus_8"}}
    bad_source = {**cloud, "id": "45", "source": "has space"}
    no_id = {k: v for k, v in cloud.items() if k != "id"}
    result = run_ingest(write("ce.jsonl", jsonl(cloud, flat_data, no_subject, bad_source, no_id)))
    assert (result.read, result.accepted, result.dead_lettered) == (5, 3, 2)
    rows = con.execute(
        "SELECT event_id, customer_id, event_name, quantity, CAST(properties AS VARCHAR) FROM events ORDER BY line_no"
    ).fetchall()
    assert rows == [
        ("/edge/eu 42", "cus_9", "llm_tokens", Decimal("1200"), '{"model":"embed"}'),
        ("/edge/eu 43", "cus_9", "llm_tokens", Decimal("7"), '{"model":"gpt"}'),
        ("/edge/eu 44", "cus_8", "llm_tokens", None, None),
    ]
    reasons = [r for _, r, _ in dead_letters(con)]
    assert reasons == [
        "CloudEvent: field 'source' must be a URI-reference without whitespace",
        "CloudEvent: missing required field 'id'",
    ]


def test_cloudevent_data_in_base64_is_read_when_it_is_json_and_refused_otherwise(write, run_ingest, con):
    base = {"specversion": "1.0", "source": "/edge", "type": "llm_tokens", "subject": "cus_9", "time": "2026-10-05T10:00:00Z"}

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    records = [
        {**base, "id": "1", "data_base64": b64(b'{"quantity": 0.30000000000000001, "properties": {"model": "embed"}}')},
        {**base, "id": "2", "datacontenttype": "application/protobuf", "data_base64": b64(b"\x08\x96\x01\xff")},
        {**base, "id": "3", "data_base64": "not base64!"},
        {**base, "id": "4", "data_base64": b64(b"[1, 2]")},
        {**base, "id": "5", "data": "plain text"},
    ]
    result = run_ingest(write("ce64.jsonl", jsonl(*records)))
    assert (result.read, result.accepted, result.dead_lettered) == (5, 1, 4)
    # The fraction is read from the decoded text as written, not through a double.
    assert con.execute("SELECT event_id, quantity, CAST(properties AS VARCHAR) FROM events").fetchall() == [
        ("/edge 1", Decimal("0.30000000000000001"), '{"model":"embed"}')]
    unreadable = ("CloudEvent: field 'data_base64' must hold a JSON object in base64 (UTF-8 text); "
                  "meterctl reads quantity and properties from JSON data only")
    assert [r for _, r, _ in dead_letters(con)] == [
        unreadable, unreadable, unreadable, "CloudEvent: field 'data' must be a JSON object, got VARCHAR"]


def test_a_failure_inside_a_chunk_is_reported_as_itself_and_leaves_nothing(write, run_ingest, con, monkeypatch):
    import duckdb

    from meterctl.store.duckdb import sqlfiles

    real_run = sqlfiles.run

    def failing(con, name, params):
        if name == "classify_stage":
            con.execute("SELECT error('the real failure')")
        real_run(con, name, params)

    monkeypatch.setattr(sqlfiles, "run", failing)
    with pytest.raises(duckdb.Error, match="the real failure"):
        run_ingest(write("a.jsonl", jsonl(event("e1"))))
    assert scalar(con, "SELECT count(*) FROM events") == 0


def test_a_byte_order_mark_starting_a_later_line_is_read_past_and_kept_in_the_raw_text(write, run_ingest, con, cli, db):
    # cat a.jsonl b.jsonl, where b.jsonl was saved with a byte-order mark.
    bom = "\ufeff"
    path = write("cat.jsonl", jsonl(event("b0")) + bom + jsonl(event("b1")) + bom + '{"event_id":"b2"}\n')
    result = run_ingest(path)
    assert (result.read, result.accepted, result.dead_lettered) == (3, 2, 1)
    [(line_no, reason, raw)] = dead_letters(con)
    assert line_no == 3 and reason == "missing required field 'customer_id'" and raw == bom + '{"event_id":"b2"}'
    con.close()
    shown = cli("dlq", "show", "1", "--db", db)
    assert '\\ufeff{"event_id":"b2"}' in shown.stdout and bom not in shown.stdout


def test_a_line_that_starts_like_parquet_is_still_a_jsonl_line(write, run_ingest, con):
    # Found by Hypothesis: content sniffing must not take "PAR1..." text for a Parquet file.
    result = run_ingest(write("odd.jsonl", "PAR1\n" + jsonl(event("e1"))))
    assert (result.read, result.accepted, result.dead_lettered) == (2, 1, 1)
    assert dead_letters(con)[0][1] == "malformed JSON"


def test_a_text_line_starting_with_the_gzip_magic_bytes_is_text(write, run_ingest):
    # Found by Hypothesis: two bytes 1f 8b at the start do not make a gzip file.
    result = run_ingest(write("odd.jsonl", b"\x1f\x8b\n" + jsonl(event("e1")).encode()))
    [outcome] = result.files
    assert (outcome.read, outcome.accepted, outcome.dead_lettered) == (2, 1, 1)
