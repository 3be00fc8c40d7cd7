"""Invoices: drafts, finalizing, numbering, revisions after late events, exports, explain, verify."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from meterctl.audit import explain, verify
from meterctl.customers_file import import_customers
from meterctl.errors import OutputError
from meterctl.export import export, to_csv, to_html, to_json
from meterctl.invoicing import get_invoice, list_invoices
from meterctl.rating import month
from tests.conftest import ACME_CUSTOMERS, PRO, event, jsonl
from tests.tenants import TWO_CUSTOMERS, Tenant, events_a


def test_drafts_are_regenerated_until_finalized_then_numbered_in_order(tenant):
    first = tenant.invoice()
    assert [(o.invoice_id, o.action, o.status, o.number) for o in first.outcomes] == [
        ("cus_1-20261001-r1", "created", "draft", None),
        ("cus_2-20260910-r1", "created", "draft", None),
    ]
    again = tenant.invoice()
    assert [o.action for o in again.outcomes] == ["unchanged", "unchanged"]
    final = tenant.invoice(finalize=True)
    assert [(o.invoice_id, o.number) for o in final.outcomes] == [
        ("cus_1-20261001-r1", "INV-2026-000001"), ("cus_2-20260910-r1", "INV-2026-000002")]
    # Finalized invoices are left alone: no renumbering, no new revision.
    assert [(o.action, o.number) for o in tenant.invoice(finalize=True).outcomes] == [
        ("unchanged", "INV-2026-000001"), ("unchanged", "INV-2026-000002")]


def test_invoicing_uses_the_rating_run_recorded_from_the_same_inputs(tenant, write, config):
    def runs() -> list[int]:
        return [r for (r,) in tenant.con.execute("SELECT run_id FROM rating_runs ORDER BY run_id").fetchall()]

    rated = tenant.rate()
    first = tenant.invoice()
    assert first.rating.run_id == rated.run_id and runs() == [rated.run_id]  # the lines are stored once
    assert all(verify(tenant.events, tenant.ledger, o.invoice_id).identical for o in first.outcomes)
    assert tenant.invoice().rating.run_id == rated.run_id
    stored = tenant.con.execute("SELECT DISTINCT rating_run_id FROM invoices").fetchall()
    assert stored == [(rated.run_id,)]
    # New events: a new run, even for lines that come out the same (an event of another month).
    tenant.ingest(write("other.jsonl", jsonl(event("nov1", timestamp="2026-11-05T12:00:00Z"))))
    after_ingest = tenant.invoice()
    assert after_ingest.rating.run_hash == rated.run_hash and runs() == [rated.run_id, after_ingest.rating.run_id]
    # Other meter definitions: a new run as well (the run records the meters behind its lines).
    (config / "meters.yaml").write_text((config / "meters.yaml").read_text()
                                        + "  - {name: unused, event_name: never_sent, aggregation: count}\n")
    assert tenant.invoice().rating.run_id not in runs()[:2] and len(runs()) == 3
    assert [o.action for o in tenant.invoice().outcomes] == ["unchanged", "unchanged"] and len(runs()) == 3
    # A run for some customers is a run of its own, reused by the same filter only.
    one = tenant.invoice(customers=["cus_1"]).rating.run_id
    assert one not in runs()[:3] and tenant.invoice(customers=["cus_1"]).rating.run_id == one and len(runs()) == 4


def test_invoice_after_rate_takes_the_runs_lines_without_rating_the_month_again(tenant, write, monkeypatch):
    # An event without its quantity: the run's note about it comes with the run.
    tenant.ingest(write("late.jsonl", jsonl(event("t9", event_name="llm_tokens", quantity=None, properties={"model": "big"}))))
    rated = tenant.rate()
    assert rated.unmeterable
    calls = []
    price_jobs = month.price_jobs
    monkeypatch.setattr(month, "price_jobs", lambda *args, **kwargs: calls.append(1) or price_jobs(*args, **kwargs))
    run = tenant.invoice()
    assert calls == [] and run.rating.run_id == rated.run_id
    assert run.rating.lines == rated.lines and run.rating.run_hash == rated.run_hash
    assert [line.amount.as_tuple().exponent for line in run.rating.lines] == [-2] * len(rated.lines)
    assert run.rating.unmeterable == rated.unmeterable
    assert all(verify(tenant.events, tenant.ledger, o.invoice_id).identical for o in run.outcomes)
    # Stored lines that no longer give the run's hash are not taken: the month is rated again.
    tenant.con.execute("UPDATE rated_lines SET precise_amount = '0' WHERE run_id = ? AND line_no = 1", [rated.run_id])
    tenant.invoice()
    assert calls == [1]
    # So is it when a customer has a new version since the run.
    import_customers(tenant.ledger, write("customers.yaml", TWO_CUSTOMERS.replace("Globex <Ltd>", "Globex Inc")))
    tenant.invoice()
    assert calls == [1, 1]


EMPTY_SCALE = """plan: scale
version: {version}
effective_from: 2026-10-{day:02d}
currency: USD
"""


def test_a_segment_priced_by_a_version_without_fees_or_charges_verifies_and_is_not_reused_across_versions(tenant, config):
    # cus_1 is on scale from Oct 20: that segment gets no lines from an empty version, so only
    # the run's record of its versions says which one priced it.
    (config / "scale" / "v2.yaml").write_text(EMPTY_SCALE.format(version=2, day=1))
    first = tenant.invoice()
    assert {l.pricebook for l in first.rating.lines if l.customer_id == "cus_1"} == {"pro@1"}
    assert all(verify(tenant.events, tenant.ledger, o.invoice_id).identical for o in first.outcomes)
    # Another empty version gives the very same lines, but it is not the run's version.
    (config / "scale" / "v3.yaml").write_text(EMPTY_SCALE.format(version=3, day=10))
    again = tenant.invoice()
    assert again.rating.run_hash == first.rating.run_hash and again.rating.run_id != first.rating.run_id
    assert tenant.con.execute("SELECT count(*) FROM pricebook_versions WHERE plan = 'scale' AND version = 3").fetchall() == [(1,)]
    assert tenant.invoice().rating.run_id == again.rating.run_id


def test_totals_are_the_sum_of_rounded_lines(tenant):
    tenant.invoice()
    for invoice in list_invoices(tenant.ledger, with_lines=True):
        assert invoice.subtotal_minor == sum(line.amount_minor for line in invoice.lines)
        assert invoice.total_minor == invoice.subtotal_minor - invoice.credits_minor + invoice.tax_minor
        assert all(line.amount == Decimal(line.amount_minor).scaleb(-2) for line in invoice.lines)
    acme = get_invoice(tenant.ledger, "cus_1-20261001-r1")
    # pro until Oct 20 (19/31 of 31.00), scale after (12/31 of 62.00); 8 calls, 2 free + 1 flat fee.
    fees = [(l.name, l.amount_minor, l.proration) for l in acme.lines if l.kind == "fee"]
    assert fees == [("Platform fee", 1900, "19/31"), ("Scale fee", 2400, "12/31")]


def test_lines_read_back_are_the_lines_rated(tenant):
    run = tenant.invoice()
    rated = {(l.customer_id, l.segment_start, l.name, tuple(l.dimensions.items())): l for l in run.rating.lines}
    invoices = list_invoices(tenant.ledger, with_lines=True)
    assert sum(len(i.lines) for i in invoices) == len(rated)
    for invoice in invoices:
        for line in invoice.lines:
            assert dataclasses.replace(line) == line  # every field is set
            r = rated[(invoice.customer_id, line.segment_start, line.name, tuple(line.dimensions.items()))]
            assert (line.kind, line.meter, line.plan, line.version, line.pricebook_hash, line.segment_end,
                    line.window_start, line.window_end, line.quantity, line.unit_price, line.proration,
                    line.precise_amount, line.amount, line.amount_minor, line.unmeterable) == (
                r.kind, r.meter, r.plan, r.version, r.pricebook_hash, r.segment_end, r.window_start, r.window_end,
                r.quantity, r.unit_price, r.proration, r.precise_amount, r.amount, r.amount_minor, r.unmeterable)
            assert [(t["tier"], Decimal(t["units"]), Decimal(t["amount"])) for t in line.tiers] == \
                [(t.tier, t.units, t.amount) for t in r.tiers]


def test_late_events_make_a_new_revision_and_never_change_the_finalized_one(tenant, write):
    tenant.invoice(finalize=True)
    before = get_invoice(tenant.ledger, "INV-2026-000001")
    tenant.ingest(write("late.jsonl", jsonl(event("late1", timestamp="2026-10-30T12:00:00Z"),
                                            event("late2", timestamp="2026-10-30T13:00:00Z"))))
    run = tenant.invoice()
    revised = {o.customer_id: o for o in run.outcomes}["cus_1"]
    assert (revised.invoice_id, revised.action, revised.status, revised.delta_minor) == ("cus_1-20261001-r2", "revised", "draft", 10)
    assert {o.customer_id: o.action for o in run.outcomes}["cus_2"] == "unchanged"
    assert get_invoice(tenant.ledger, "INV-2026-000001") == before  # still readable, unchanged
    tenant.invoice(finalize=True)
    old, new = get_invoice(tenant.ledger, "cus_1-20261001-r1"), get_invoice(tenant.ledger, "cus_1-20261001-r2")
    assert (old.status, old.superseded_by) == ("superseded", "cus_1-20261001-r2")
    assert (new.status, new.number, new.supersedes) == ("finalized", "INV-2026-000003", "cus_1-20261001-r1")
    assert new.total_minor - old.total_minor == new.delta_minor == 10


def test_verify_rederives_the_invoice_as_rated_and_counts_late_events_apart(tenant, write):
    tenant.invoice(finalize=True)
    result = verify(tenant.events, tenant.ledger, "INV-2026-000001")
    assert result.identical and result.differences == () and result.later_events == 0
    tenant.ingest(write("late.jsonl", jsonl(event("late1", timestamp="2026-10-30T12:00:00Z"))))
    result = verify(tenant.events, tenant.ledger, "INV-2026-000001")
    # What was billed is still exactly what its events gave; the late one is reported apart.
    assert result.identical and result.later_events == 1
    tenant.invoice(finalize=True)
    old, new = verify(tenant.events, tenant.ledger, "INV-2026-000001"), verify(tenant.events, tenant.ledger, "INV-2026-000003")
    assert (old.identical, old.superseded_by, new.identical, new.later_events) == (True, "cus_1-20261001-r2", True, 0)
    explained = explain(tenant.events, tenant.ledger, "INV-2026-000001", with_events=True)
    calls = [x for x in explained.lines if x.line.meter == "api_calls"][-1]
    assert (calls.line.quantity, calls.event_count, len(calls.events), calls.later_events) == (2, 2, 2, 1)


def test_verify_shows_the_difference_when_the_store_was_changed_behind_its_back(tenant):
    tenant.invoice(finalize=True)
    tenant.con.execute("UPDATE events SET quantity = 7 WHERE event_id = 't1'")
    result = verify(tenant.events, tenant.ledger, "INV-2026-000001")
    assert not result.identical
    assert [(d.field, d.stored, d.derived) for d in result.differences if d.field == "quantity"] == [("quantity", "1500", "7")]


def test_verify_uses_the_frozen_snapshot_not_the_edited_file(tenant, config):
    tenant.invoice(finalize=True)
    (config / "pro" / "v1.yaml").write_text((config / "pro" / "v1.yaml").read_text().replace("31.00", "99.00"))
    assert verify(tenant.events, tenant.ledger, "INV-2026-000002").identical


def test_explain_walks_a_line_back_to_its_events(tenant):
    tenant.invoice()
    result = explain(tenant.events, tenant.ledger, "cus_1-20261001-r1", with_events=True)
    tokens = next(x for x in result.lines if x.line.meter == "tokens" and x.line.dimensions == {"model": "big"})
    # t3 (Oct 24) falls in the scale segment, which does not charge tokens.
    assert tokens.line.quantity == 1500 and tokens.event_count == 1
    assert sum(Decimal(e.quantity) for e in tokens.events) == tokens.line.quantity
    calls = [x for x in result.lines if x.line.meter == "api_calls"]
    # Two segments (pro, then scale from Oct 20): each line's events are exactly its window's.
    assert [(x.line.quantity, x.event_count) for x in calls] == [(6, 6), (2, 2)]
    assert {e.event_id for e in calls[1].events} == {"s1", "s2"}
    assert {(Path(e.source).name, e.source_line) for e in calls[1].events} == {("b.jsonl", 1), ("b.jsonl", 2)}
    fee = next(x for x in result.lines if x.line.kind == "fee")
    assert fee.event_count is None and fee.events == ()
    assert tokens.rating_run_id == 1 and tokens.meter["event_name"] == "llm_tokens"


def test_exports_are_byte_identical_and_independent_of_ingest_order(tmp_path, config, write, files):
    forward = Tenant(tmp_path / "forward.duckdb", config, files)
    backward = Tenant(tmp_path / "backward.duckdb", config, [files[0], files[2], files[1]])
    outputs = []
    for tenant in (forward, backward, forward):
        tenant.invoice(finalize=True)
        invoices = list_invoices(tenant.ledger, current_only=True, with_lines=True)
        outputs.append((to_json(invoices), to_csv(invoices), [to_html(i) for i in invoices]))
        directory = tmp_path / f"parquet{len(outputs)}"
        directory.mkdir()
        export(invoices, "parquet", directory)
        outputs[-1] += ((directory / "invoices.parquet").read_bytes(),)
    assert outputs[0] == outputs[1] == outputs[2]




def test_json_money_is_integer_minor_units_and_csv_is_major_units(tenant):
    tenant.invoice()
    invoices = list_invoices(tenant.ledger, current_only=True, with_lines=True)
    document = json.loads(to_json(invoices))
    acme = next(i for i in document["invoices"] if i["customer"]["id"] == "cus_1")
    assert isinstance(acme["total_minor"], int) and all(isinstance(l["amount_minor"], int) for l in acme["lines"])
    assert all(isinstance(l["quantity"], str) for l in acme["lines"])
    rows = list(csv.DictReader(io.StringIO(to_csv(invoices).decode())))
    acme_rows = [r for r in rows if r["customer_id"] == "cus_1"]
    assert sum(Decimal(r["amount"]) for r in acme_rows) == Decimal(acme_rows[0]["subtotal"])
    assert all(r["currency"] == "USD" and len(r["amount"].split(".")[1]) == 2 for r in acme_rows)


def test_an_interrupted_export_leaves_the_old_file(tenant, tmp_path, monkeypatch):
    tenant.invoice()
    invoices = list_invoices(tenant.ledger, current_only=True, with_lines=True)
    target = tmp_path / "out.json"
    target.write_text("old")

    def broken(handle):  # the bytes are written, then the disk fails
        raise OSError("disk full")

    monkeypatch.setattr("meterctl.io.files.os.fsync", broken)
    with pytest.raises(OutputError, match="disk full"):
        export(invoices, "json", target)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.json")] == []








def test_a_draft_follows_the_customers_details_until_it_is_finalized(tenant, write):
    tenant.invoice()
    import_customers(tenant.ledger, write("renamed.yaml", TWO_CUSTOMERS.replace("Acme Corp", "Acme Corporation")))
    outcome = {o.customer_id: o for o in tenant.invoice(finalize=True).outcomes}["cus_1"]
    assert outcome.action == "finalized"
    invoice = get_invoice(tenant.ledger, "INV-2026-000001")
    assert (invoice.customer_name, invoice.customer_version) == ("Acme Corporation", 2)


def test_a_draft_for_a_period_no_longer_billed_is_removed(tenant, write):
    tenant.invoice()
    moved = TWO_CUSTOMERS.replace("billing: calendar", "billing: anniversary")
    import_customers(tenant.ledger, write("moved.yaml", moved))
    tenant.invoice()
    ids = [i.invoice_id for i in list_invoices(tenant.ledger) if i.customer_id == "cus_1"]
    assert ids == ["cus_1-20260914-r1"]  # the calendar draft cus_1-20261001-r1 is gone


def test_export_of_finalized_invoices_ignores_a_newer_draft(tenant, write, tmp_path):
    tenant.invoice(finalize=True)
    tenant.ingest(write("late.jsonl", jsonl(event("late1", timestamp="2026-10-30T12:00:00Z"))))
    tenant.invoice()
    latest = list_invoices(tenant.ledger, current_only=True)
    sent = list_invoices(tenant.ledger, current_only=True, revision_status="finalized")
    assert [i.invoice_id for i in latest if i.customer_id == "cus_1"] == ["cus_1-20261001-r2"]
    assert [(i.invoice_id, i.status) for i in sent if i.customer_id == "cus_1"] == [("cus_1-20261001-r1", "finalized")]


def test_html_file_names_stay_inside_the_directory(tmp_path, config, write):
    odd = TWO_CUSTOMERS.replace("id: cus_2", "id: ../a/b")
    files = [write("odd.yaml", odd), write("a.jsonl", events_a().replace('"cus_2"', '"../a/b"'))]
    tenant = Tenant(tmp_path / "odd.duckdb", config, files)
    tenant.invoice()
    out = tmp_path / "deep" / "html"
    result = export(list_invoices(tenant.ledger, current_only=True, with_lines=True), "html", out)
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and "cus_1-20261001-r1.html" in names
    assert all(Path(f).parent == out for f in result.files)
    assert not any(name.startswith(".") for name in names)  # no hidden file


def test_html_file_names_never_collide(tenant, tmp_path):
    tenant.invoice()
    invoice = list_invoices(tenant.ledger, current_only=True, with_lines=True)[0]
    ids = ["a/b-20261001-r1", "a_b-20261001-r1", "m\u00fcller-20261001-r1", "m\u00e4ller-20261001-r1",
           "Acme-20261001-r1", "acme-20261001-r1"]
    invoices = [dataclasses.replace(invoice, invoice_id=i) for i in ids]
    out = tmp_path / "html"
    result = export(invoices, "html", out)
    assert len(set(result.files)) == len({f.casefold() for f in result.files}) == len(ids)
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(f).name for f in result.files)
    for given, written in zip(ids, result.files, strict=True):
        assert html.escape(given) in Path(written).read_text()
    # Names that needed no change keep it; the first of two names equal but for case too.
    assert {"a_b-20261001-r1.html", "Acme-20261001-r1.html"} <= {Path(f).name for f in result.files}


def test_export_paths_and_modes(tenant, tmp_path):
    tenant.invoice()
    invoices = list_invoices(tenant.ledger, current_only=True, with_lines=True)
    result = export(invoices, "csv", f"{tmp_path}/new-dir/")
    assert result.files == (str(tmp_path / "new-dir" / "invoices.csv"),)
    private = tmp_path / "private.json"
    private.write_text("old")
    private.chmod(0o600)
    export(invoices, "json", private)
    assert private.stat().st_mode & 0o777 == 0o600 and private.read_bytes() == to_json(invoices)






def test_a_period_that_has_not_ended_can_be_drafted_but_not_finalized(tenant):
    from datetime import UTC, datetime

    from meterctl.cli.common import message
    from meterctl.errors import DataError

    mid_october = datetime(2026, 10, 25, tzinfo=UTC)
    drafts = tenant.invoice(now=mid_october)
    assert {o.customer_id: o.period_open for o in drafts.outcomes} == {"cus_1": True, "cus_2": False}
    with pytest.raises(DataError, match=r"cannot finalize 1 invoice\(s\) whose billing period has not ended yet: cus_1") as refused:
        tenant.invoice(finalize=True, now=mid_october)
    # The library names its parameter; the command line says --finalize.
    assert "build drafts now (without finalize)" in str(refused.value)
    assert "(without --finalize)" in message(refused.value)
    assert all(i.status == "draft" for i in list_invoices(tenant.ledger))
    assert tenant.con.execute("SELECT count(*) FROM rating_runs").fetchall() == [(1,)]  # the refusal wrote nothing


def test_export_never_replaces_a_pipe_and_writes_through_a_symlink(tenant, tmp_path):
    tenant.invoice()
    invoices = list_invoices(tenant.ledger, current_only=True, with_lines=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        export(invoices, "json", fifo)
    assert fifo.is_fifo()
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    export(invoices, "json", link)
    assert link.is_symlink() and real.read_bytes() == to_json(invoices)


def test_a_corrected_subscription_start_revises_the_finalized_invoice_instead_of_billing_twice(tenant, write):
    # cus_2 bills on anniversaries of Aug 10; the CRM corrects the start to Aug 1 after the
    # Sep 10 – Oct 10 invoice was finalized: the period moves to Sep 1 – Oct 1.
    tenant.invoice(finalize=True)
    import_customers(tenant.ledger, write("fixed.yaml", TWO_CUSTOMERS.replace("start: 2026-08-10", "start: 2026-08-01")))
    september = {o.customer_id: o for o in tenant.invoice(period="2026-09", finalize=True).outcomes}["cus_2"]
    # (cus_1's first, partial period Sep 14 – Oct 1 is numbered 000003 in the same run.)
    assert (september.invoice_id, september.action, september.number) == ("cus_2-20260901-r2", "revised", "INV-2026-000004")
    old, new = get_invoice(tenant.ledger, "INV-2026-000002"), get_invoice(tenant.ledger, "INV-2026-000004")
    assert (old.status, old.superseded_by, new.supersedes) == ("superseded", new.invoice_id, old.invoice_id)
    assert new.delta_minor == new.total_minor - old.total_minor
    current = [i.invoice_id for i in list_invoices(tenant.ledger, current_only=True) if i.customer_id == "cus_2"]
    assert current == ["cus_2-20260901-r2"]




def test_a_revision_names_the_invoice_it_replaces_and_the_change(tenant, write):
    tenant.invoice(finalize=True)
    tenant.ingest(write("late.jsonl", jsonl(event("late1", timestamp="2026-10-30T12:00:00Z"))))
    tenant.invoice(finalize=True)
    revised = get_invoice(tenant.ledger, "INV-2026-000003")
    page = to_html(revised).decode()
    assert revised.supersedes_number == "INV-2026-000001"
    assert "Revision 2: replaces invoice INV-2026-000001, change +0.05 USD" in page


def test_verify_rates_again_the_month_a_period_cut_short_was_billed_in(tmp_path, config, write):
    # The anniversary period [Oct 15, Nov 15) ends with the subscription on Oct 20: it is billed
    # in October, not in November when the period would have ended.
    ending = ACME_CUSTOMERS.replace("billing: calendar", "billing: anniversary").replace(
        "      - {plan: pro, start: 2026-09-14}\n      - {plan: scale, start: 2026-10-20}\n",
        "      - {plan: pro, start: 2026-03-15, end: 2026-10-20}\n")
    tenant = Tenant(tmp_path / "ending.duckdb", config, [write("c.yaml", ending), write("a.jsonl", events_a())])
    built = tenant.invoice("2026-10")
    [outcome] = [o for o in built.outcomes if o.period_start.isoformat() == "2026-10-15"]
    result = verify(tenant.events, tenant.ledger, outcome.invoice_id)
    assert result.identical and result.differences == ()
    assert result.derived_total_minor == outcome.total_minor > 0


def test_a_revision_after_a_currency_correction_has_no_delta(tmp_path, config, write):
    eur = PRO.replace("plan: pro", "plan: pro_eur").replace("currency: USD", "currency: EUR")
    (config / "pro_eur").mkdir()
    (config / "pro_eur" / "v1.yaml").write_text(eur)
    usd = ACME_CUSTOMERS.replace("      - {plan: scale, start: 2026-10-20}\n", "")
    tenant = Tenant(tmp_path / "cur.duckdb", config, [write("c.yaml", usd), write("a.jsonl", events_a())])
    [first] = [o for o in tenant.invoice("2026-10", finalize=True).outcomes if o.customer_id == "cus_1"]
    import_customers(tenant.ledger, write("c2.yaml", usd.replace("currency: USD", "currency: EUR").replace("plan: pro,", "plan: pro_eur,")))
    [revised] = [o for o in tenant.invoice("2026-10").outcomes if o.customer_id == "cus_1"]
    assert (first.currency, revised.currency) == ("USD", "EUR")
    assert revised.action == "revised" and revised.delta_minor is None
    assert get_invoice(tenant.ledger, revised.invoice_id).delta_minor is None


