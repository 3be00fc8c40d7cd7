"""The fast path of stage_fast.sql settles clean lines without the full rule set of
stage_lines.sql. It must never change an outcome: every line must end in the same place,
with the same values, reason and raw text, whichever path took it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterctl.events import IngestOptions
from meterctl.ingest import ingest
from meterctl.io.sources import Source
from tests.conftest import examples, opened

NOW = datetime(2026, 11, 1, tzinfo=UTC)
TABLES = {
    "events": "batch_id, line_no",
    "dead_letters": "batch_id, line_no",
    "conflicts": "batch_id, line_no",
}


def _outcome(db: Path, files: list[Path], **options) -> tuple:
    store = opened(db)
    try:
        result = ingest(store.events, [Source(str(f), f) for f in files], IngestOptions(now=NOW, **options))
        tables = {
            name: store.con.execute(
                f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (SELECT * FROM {name} ORDER BY {order})"
            ).fetchall()
            for name, order in TABLES.items()
        }
    finally:
        store.close()
    counts = [(f.read, f.accepted, f.duplicates, f.conflicts, f.dead_lettered, f.blank_lines) for f in result.files]
    return counts, tables


def assert_same_either_path(tmp: Path, lines: list[bytes], **options) -> tuple:
    data = tmp / "in.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    fast = _outcome(tmp / "fast.duckdb", [data], **options)
    full = _outcome(tmp / "full.duckdb", [data], fast_path=False, **options)
    assert fast == full
    return fast


def _event(i, **fields) -> dict:
    event = {"event_id": f"e{i}", "customer_id": "c1", "event_name": "api_call",
             "timestamp": "2026-10-01T00:00:00Z", "quantity": 1, "properties": {"model": "m"}}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()

EDGE_VALUES = {
    "timestamp": ["2026-10-01T00:00:00Z", "2026-10-01T00:00:00+02:00", "2026-10-01T00:00:00", "2026-10-01 00:00:00Z",
                  "2026-10-01t00:00:00z", "2026-10-01T00:00:00.123456789Z", 1790000000, 1790000000123, "1790000000",
                  "2026-10-01", "2026-10-01T00:00:00 Europe/Paris", "2026-13-01T00:00:00Z", "2099-01-01T00:00:00Z",
                  "2026-10-01T00:00:00+05:30Z", "2026-10-01T00:00:00-", "2026-10-01T00:00:00 +01", "2026-10-01T00:00:00é",
                  "2026-10-01T00:00:00.000000000000000000000000Z", "2026-10-01T00:00\u0301:00Z", None, True, [1], _DROP],
    "quantity": [0, -1, 1.5, 1.10, "2.25", "1e3", 1e30, 1e-19, "0.1234567890123456789", 12345678901234567890,
                 123456789012345678901, "NaN", "Infinity", "0x10", "1_000", " 5", "", "lots", True, None, {"x": 1}, [1], _DROP],
    "properties": [{}, None, [], "str", 5, {"b": 1, "a": {"z": 1}}, {"specversion": "1.0"}, {"ü": "ñ"}, _DROP],
    "event_id": ["", " ", "   \t", "x" * 20, " " * 20, 5, None, True, {"a": 1}, "a\"b", "\u00e9", _DROP,
                 # strings spelled like other JSON values, and every kind of first character
                 "true", "false", "null", "NaN", "Infinity", "-Infinity", "5", "1e3", "{x", "[1", "_id", "fx", "nx",
                 "tx", "Ix", "Nx", "`x", "~", "Zed", "a", "A", "z", "\tx", " x", "@x"],
    "customer_id": ["", " ", 5, None, "\t", "ok", _DROP],
    "event_name": ["", 7, None, "x", _DROP],
}


def test_edge_values_take_the_same_path_outcome(tmp_path: Path) -> None:
    lines = []
    i = 0
    for field, values in EDGE_VALUES.items():
        for value in values:
            i += 1
            lines.append(json.dumps(_event(i, **{field: value}), ensure_ascii=False).encode())
    lines += [
        b'{"event_id":"esc\\u0041","customer_id":"c\\u0020","event_name":"x","timestamp":"2026-10-01T00:00:00Z"}',
        b'{"event\\u005fid":"k","customer_id":"c","event_name":"x","timestamp":"2026-10-01T00:00:00Z"}',
        b'{"event_id":"d1","event_id":"d2","customer_id":"c","event_name":"x","timestamp":"2026-10-01T00:00:00Z"}',
        b'{"event_id":"sv","specversion":null,"customer_id":"c","event_name":"x","timestamp":"2026-10-01T00:00:00Z"}',
        b'{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"c","time":"2026-10-01T00:00:00Z"}',
        b'  {"event_id":"ws","customer_id":"c","event_name":"x","timestamp":"2026-10-01T00:00:00Z"}\r',
        b'{"event_id":"bad\xff","customer_id":"c","event_name":"x","timestamp":"2026-10-01T00:00:00Z"}',
        b'{"event_id":"trunc","customer_id":"c","event_',
        b"", b"   ", b"[1]", b"5", b"null", b"{}",
        b'{"event_id":"t","customer_id":"c","event_name":"x","timestamp":"2026-10-01T00:00:00Z"} extra',
    ]
    # numbers a double would change, written plainly, beside a nested "quantity", or escaped
    q = b'{"event_id":"q%d","customer_id":"c","event_name":"x","timestamp":"2026-10-01T00:00:00Z","quantity":%s%s}'
    for n, (number, extra) in enumerate([(b"0.30000000000000001", b""), (b"12345678901234567.5", b""), (b"0.3", b""),
                                         (b"0.3", b',"properties":{"quantity":0.3}'), (b"2.5", b',"properties":{"quantity":2}'),
                                         (b"0.30000000000000001", b',"properties":{"quantity":0.3}'),
                                         (b"0.5", b',"properties":{"n":"\\u00e9"}'), (b'"0.25"', b""), (b"1.5e3", b"")]):
        lines.append(q % (n, number, extra))
    # resends: identical, reordered properties, same instant and quantity written otherwise, conflicts
    lines += [json.dumps(_event(900, properties={"a": 1, "b": 2})).encode(),
              json.dumps(_event(900, properties={"b": 2, "a": 1})).encode(),
              json.dumps(_event(901, quantity=5)).encode(), json.dumps(_event(901, quantity="5.000")).encode(),
              json.dumps(_event(901, quantity=6)).encode(),
              json.dumps(_event(902)).encode(), json.dumps(_event(902, timestamp="2026-10-01T02:00:00+02:00")).encode(),
              json.dumps(_event(902, timestamp=1759276800)).encode()]
    counts, tables = assert_same_either_path(tmp_path, lines)
    assert counts[0][1] > 20 and counts[0][4] > 40  # both paths were exercised
    assert_same_either_path(tmp_path, lines, max_age=timedelta(days=3650), max_future=timedelta(days=30000))


_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**22, 10**22),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
)
_timestamps = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.isoformat(sep="T") + "Z"),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?\Z"),
    st.integers(0, 4 * 10**12), _json_scalars,
)
_quantities = st.one_of(
    st.integers(-10**25, 10**25), st.decimals(allow_nan=False, allow_infinity=False, places=20).map(str),
    st.floats(allow_nan=False, allow_infinity=False), st.from_regex(r"\A[+-]?[0-9]{0,22}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?\Z"),
    _json_scalars,
)
_ids = st.one_of(st.sampled_from(["a", "b", "c", " ", "", "x" * 16]), st.text(max_size=18), _json_scalars)
_events = st.fixed_dictionaries(
    {},
    optional={
        "event_id": _ids, "customer_id": _ids, "event_name": _ids, "timestamp": _timestamps,
        "quantity": _quantities,
        "properties": st.one_of(st.dictionaries(st.text(max_size=3), _json_scalars, max_size=3), _json_scalars),
    },
)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_events, st.booleans(), st.integers(0, 30)), min_size=1, max_size=40))
def test_random_lines_end_in_the_same_place_on_either_path(tmp_path_factory, items) -> None:
    tmp = tmp_path_factory.mktemp("fp")
    lines = []
    for event, compact, cut in items:
        text = json.dumps(event, separators=(",", ":") if compact else (", ", ": "), ensure_ascii=False).encode()
        lines.append(text[:-cut] if cut == 30 else text)  # now and then a truncated line
    assert_same_either_path(tmp, lines)


def test_non_standard_number_literals_take_the_same_path_outcome(tmp_path: Path) -> None:
    # DuckDB's JSON parser takes nan, inf and infinity in any case (json.dumps never writes
    # them): read as VARCHAR they look like text, but they are numbers, never strings.
    literals = [b"inf", b"-inf", b"nan", b"NaN", b"Infinity", b"-Infinity", b"INF", b"iNf", b"nAn", b"infinity"]
    fields = {
        b"event_id": b'"e%d"', b"customer_id": b'"c1"', b"event_name": b'"api_call"',
        b"timestamp": b'"2026-10-01T00:00:00Z"', b"quantity": b"1",
    }
    lines = []
    for n, literal in enumerate(literals):
        for target in fields:
            values = {name: (literal if name == target else value) for name, value in fields.items()}
            values[b"event_id"] = values[b"event_id"].replace(b"%d", b"%d" % (n * 10 + len(lines)))
            lines.append(b"{" + b",".join(b'"%s":%s' % (k, v) for k, v in values.items()) + b"}")
    counts, tables = assert_same_either_path(tmp_path, lines)
    assert counts[0][1] == 0  # none of them is a valid event
