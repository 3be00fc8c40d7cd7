"""The run hash and the invoice content hash are sha256 over canonical JSON: the text
json.dumps(sort_keys=True, separators=(",", ":")) gives. Stores keep these hashes (a
finalized invoice is only revised when its content hash changes), so the faster encoding
must give the very same bytes for any line."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterctl import pricing
from meterctl.invoices import content_hash, invoice_totals
from meterctl.rating import LineContext, RatedLine, run_hash
from tests.conftest import examples

# What an invoice's content hash leaves out of each line: where and when it was computed,
# not what it bills (DESIGN: an unchanged invoice is recognised whenever it is derived again).
NOT_CONTENT = ("customer_id", "currency", "timezone", "period_start", "period_end", "unmeterable")

texts = st.text(max_size=12)  # any code point: quotes, backslashes, controls, non-ASCII
decimals = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=6)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1))
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda at: at.replace(microsecond=0, tzinfo=UTC))
tier_uses = st.builds(
    pricing.TierUse, tier=st.integers(1, 5), lower=decimals, up_to=st.none() | decimals, units=decimals,
    unit_price=decimals, flat_fee=decimals, amount=decimals,
)


@st.composite
def rated_lines(draw) -> RatedLine:
    amount = draw(decimals).quantize(Decimal("0.01"))
    context = LineContext(
        customer_id=draw(texts), currency=draw(st.sampled_from(["USD", "JPY", "KWD"])), timezone=draw(texts),
        period_start=draw(days), period_end=draw(days), segment_start=draw(days), segment_end=draw(days),
        window_start=draw(instants), window_end=draw(instants), plan=draw(texts), version=draw(st.integers(1, 99)),
        pricebook_hash=draw(texts))
    return RatedLine(
        context=context, kind=draw(st.sampled_from(["fee", "usage", "minimum", "maximum"])),
        name=draw(texts), meter=draw(st.none() | texts),
        dimensions=draw(st.dictionaries(texts, st.none() | texts, max_size=3)),
        quantity=draw(decimals), unit_price=draw(st.none() | decimals),
        tiers=tuple(draw(st.lists(tier_uses, max_size=3))), proration=draw(st.none() | texts),
        precise_amount=draw(texts), amount=amount, amount_minor=int(amount.scaleb(2)),
        unmeterable=draw(st.integers(0, 10**6)),
    )


def dumps(document: object) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


@settings(max_examples=examples(300))
@given(rated_lines())
def test_a_lines_canonical_json_is_what_json_dumps_writes(line):
    assert line.canonical_json() == dumps(line.canonical())
    assert line.canonical_json(NOT_CONTENT) == dumps({k: v for k, v in line.canonical().items() if k not in NOT_CONTENT})
    assert line.canonical()["window_start"] == line.window_start.strftime("%Y-%m-%dT%H:%M:%SZ")


KEYS = sorted(RatedLine.__dataclass_fields__) + sorted(LineContext.__dataclass_fields__) + ["pricebook"]  # a superset of canonical()'s keys


@settings(max_examples=examples(200))
@given(rated_lines(), st.sets(st.sampled_from(KEYS)), st.sets(st.sampled_from(KEYS), max_size=2))
def test_any_keys_can_be_left_out(line, skip, keep_only):
    for left_out in (skip, set(KEYS) - keep_only):  # a few keys out; all but none, one or two
        assert line.canonical_json(tuple(left_out)) == dumps({k: v for k, v in line.canonical().items() if k not in left_out})


@settings(max_examples=examples(50))
@given(st.lists(rated_lines(), max_size=4), st.none() | st.lists(texts, min_size=1, max_size=3))
def test_run_and_content_hashes_are_those_of_the_json_dumps_documents(lines, customers):
    document = {"period": "2026-10", "customers": sorted(customers) if customers else None,
                "lines": [line.canonical() for line in lines]}
    assert run_hash("2026-10", customers, lines) == hashlib.sha256(dumps(document).encode()).hexdigest()
    subtotal = sum(line.amount_minor for line in lines)
    totals = {"subtotal_minor": subtotal, "credits_minor": 0, "tax_minor": 0, "total_minor": max(subtotal, 0)}
    content = {"lines": [{k: v for k, v in line.canonical().items() if k not in NOT_CONTENT} for line in lines], **totals}
    assert invoice_totals(lines).document() == totals
    assert content_hash(lines, invoice_totals(lines)) == hashlib.sha256(dumps(content).encode()).hexdigest()
