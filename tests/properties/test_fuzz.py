"""Hypothesis: whatever the lines hold, ingest never raises and never loses a line."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import examples, ingest_paths, opened

BLANK = b" \t\r\n\x0b\x0c"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["NaN", "Infinity", "1e400", "-0", "1_0"]),
)

events = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(st.text(min_size=1, max_size=8), st.integers(), st.none()),
        "customer_id": st.one_of(st.sampled_from(["c1", "c2"]), scalars),
        "event_name": st.one_of(st.sampled_from(["api_call", "llm_tokens"]), scalars),
        "timestamp": st.one_of(
            st.sampled_from(["2026-10-05T10:00:00Z", "2026-10-05T12:00:00+02:00", "2099-01-01T00:00:00Z", "bad"]),
            st.integers(min_value=-10**13, max_value=10**14), scalars,
        ),
        "quantity": st.one_of(st.decimals(allow_nan=False, allow_infinity=False).map(str), scalars),
        "properties": st.one_of(st.dictionaries(st.text(max_size=5), scalars, max_size=3), scalars),
    },
)


def _line_for(record: dict, tweak: str) -> bytes:
    text = json.dumps(record, allow_nan=True)
    if tweak == "truncate":
        text = text[: max(1, len(text) // 2)]
    elif tweak == "nan":
        text = text.replace("}", ', "quantity": NaN}', 1) if text != "{}" else '{"quantity": Infinity}'
    elif tweak == "huge":
        text = json.dumps({**record, "properties": {"blob": "x" * 200_000}})
    elif tweak == "big_number":
        text = text[:-1] + (', ' if len(text) > 2 else '') + '"quantity": 1e400}'
    raw = text.encode()
    if tweak == "crlf":
        raw += b"\r"
    return raw


lines = st.lists(
    st.one_of(
        st.tuples(events, st.sampled_from(["plain", "plain", "truncate", "nan", "crlf", "big_number", "huge"])).map(
            lambda pair: _line_for(*pair)
        ),
        st.just(b""),
        st.just(b"   \t"),
        st.binary(max_size=40),
        st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
    max_size=25,
)


def _expected_records(content: bytes) -> int:
    body = content[3:] if content.startswith(b"\xef\xbb\xbf") else content
    pieces = body.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    return sum(1 for p in pieces if p.strip(BLANK))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=lines, bom=st.booleans(), final_newline=st.booleans())
def test_no_line_is_ever_lost(tmp_path, lines, bom, final_newline):
    content = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(content)
    db = tmp_path / "fuzz.duckdb"
    db.unlink(missing_ok=True)
    store = opened(db)
    con = store.con
    try:
        result = ingest_paths(store, path, chunk_bytes=4096)
        [outcome] = result.files
        assert outcome.balanced
        assert outcome.read == _expected_records(content)
        stored_dead = con.execute("SELECT count(*), count(raw) FROM dead_letters").fetchall()[0]
        assert stored_dead == (outcome.dead_lettered, outcome.dead_lettered)
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == outcome.accepted
        quantities = [q for (q,) in con.execute("SELECT quantity FROM events WHERE quantity IS NOT NULL").fetchall()]
        assert all(math.isfinite(q) for q in quantities)
    finally:
        store.close()
