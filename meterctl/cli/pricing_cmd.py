"""`meterctl pricebook validate|list|show|diff|schema`, `meterctl rate`, `meterctl simulate`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from meterctl import store
from meterctl.cli.common import DbOption, JsonOption, WaitOption, check_output, command_group, print_json, print_table, problems_as_json, stderr_console, stdout_console
from meterctl.cli.usage_cmd import ConfigOption
from meterctl.errors import DataError, UsageError

if TYPE_CHECKING:
    from meterctl.pricebook import Catalog, PricebookVersion
    from meterctl.rating import RatingResult

pricebook_app = command_group("Versioned pricebooks: check, list, show and compare them.")

PeriodOption = Annotated[str, typer.Option("--period", help="The month whose billing periods to rate: YYYY-MM (periods that end in it).")]
CustomerOption = Annotated[list[str] | None, typer.Option("--customer", help="Only this customer (repeatable).")]


def load_config(pricebooks: Path | None):
    """The configuration directory, its meters and its pricebooks (exit 78 on any problem)."""
    from meterctl.meters import config_dir
    from meterctl.pricebook import load_configuration

    directory = config_dir(pricebooks)
    meters, catalog = load_configuration(directory)
    return directory, meters, catalog


def _frozen(db: Path, wait: float) -> dict:
    """Frozen versions from the store, or none when there is no store yet."""
    from meterctl.pricebook import frozen_versions

    if not db.exists():
        return {}
    with store.open_store(db, read_only=True, wait=wait) as con:
        return frozen_versions(con)


@pricebook_app.command("validate")
def validate_command(
    pricebooks: ConfigOption = None,
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Check every pricebook (and that frozen versions were not edited); all problems at once, exit 78."""
    from meterctl.config_yaml import ConfigProblems
    from meterctl.pricebook import frozen_problems

    with problems_as_json(as_json):
        _, _, catalog = load_config(pricebooks)
        problems = frozen_problems(catalog, _frozen(db, wait))
        if problems:
            raise ConfigProblems(problems)
    if as_json:
        print_json({"pricebooks": [{"pricebook": v.ref, "file": v.path, "hash": v.content_hash} for v in catalog.versions],
                    "problems": []})
    else:
        stderr_console().print(f"{len(catalog.versions)} pricebook version(s) of {len(catalog.plans())} plan(s), no problems")


@pricebook_app.command("list")
def list_command(
    pricebooks: ConfigOption = None,
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Every plan version: when it takes effect, its currency and cycle, whether it is frozen."""
    _, _, catalog = load_config(pricebooks)
    frozen = _frozen(db, wait)
    rows = [
        {"pricebook": v.ref, "plan": v.plan, "version": v.version, "effective_from": v.book.effective_from.isoformat(),
         "currency": v.book.currency, "billing_cycle": str(v.book.billing_cycle), "file": v.path, "hash": v.content_hash,
         "frozen": v.ref in frozen, "edited_after_freeze": v.ref in frozen and frozen[v.ref].content_hash != v.content_hash}
        for v in catalog.versions
    ]
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in ("pricebook", "effective from", "currency", "cycle", "file", "hash", "frozen"):
        table.add_column(column)
    for r in rows:
        state = "EDITED after freeze" if r["edited_after_freeze"] else "yes" if r["frozen"] else "no"
        table.add_row(r["pricebook"], r["effective_from"], r["currency"], r["billing_cycle"], r["file"], r["hash"][:12], state)
    print_table(stdout_console(), table)


def _resolve(catalog: Catalog, ref: str) -> PricebookVersion:
    from meterctl.pricebook import parse_ref

    try:
        plan, version = parse_ref(ref)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return catalog.get(plan, version)


def _money(value) -> str:
    return format(value, "f")  # as written in the file: 49.00 stays 49.00


def _describe_charge(charge) -> str:
    if charge.model == "per_unit":
        price = f"{_money(charge.unit_price)} per unit"
    elif charge.model == "package":
        price = f"{_money(charge.package_price)} per {_money(charge.package_size)} units (rounded {charge.round})"
    else:
        price = "; ".join(
            f"{'≤ ' + _money(t.up_to) if t.up_to is not None else 'above'}: {_money(t.unit_price)}"
            + (f" + {_money(t.flat_fee)}" if t.flat_fee else "")
            for t in charge.tiers
        )
    extras = []
    if charge.free_units:
        extras.append(f"{_money(charge.free_units)} free")
    if charge.price_by:
        key = charge.dimension
        extras.append(f"by {key}: " + ", ".join(
            f"{value}={_money(p.unit_price if p.unit_price is not None else p.package_price) if p.tiers is None else 'tiers'}"
            for value, p in charge.price_by[key].items()))
    if charge.minimum is not None:
        extras.append(f"minimum {_money(charge.minimum)}")
    if charge.maximum is not None:
        extras.append(f"maximum {_money(charge.maximum)}")
    return price + (f" ({'; '.join(extras)})" if extras else "")


def _refuse_edited(catalog: Catalog, chosen: Sequence[PricebookVersion], db: Path, wait: float) -> None:
    """Exit 78 when a version to be shown was edited after it rated usage: what the file says
    now is not what was billed."""
    from meterctl.config_yaml import ConfigProblems
    from meterctl.pricebook import frozen_problems

    frozen = _frozen(db, wait)
    problems = frozen_problems(catalog, {v.ref: frozen[v.ref] for v in chosen if v.ref in frozen})
    if problems:
        raise ConfigProblems(problems)


@pricebook_app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(metavar="PLAN[@VERSION]", help="A plan (its latest version) or plan@version.")],
    pricebooks: ConfigOption = None,
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """One pricebook version: fees and charges, with its file and content hash."""
    _, _, catalog = load_config(pricebooks)
    chosen = _resolve(catalog, ref)
    _refuse_edited(catalog, [chosen], db, wait)
    if as_json:
        print_json({"pricebook": chosen.ref, "file": chosen.path, "hash": chosen.content_hash,
                    "content": json.loads(chosen.book.canonical())})
        return
    book = chosen.book
    console = stdout_console()
    console.print(f"{chosen.ref}  effective {book.effective_from}  {book.currency}  "
                  f"{book.billing_cycle}  rounding {book.rounding}")
    console.print(f"{chosen.path}  sha256 {chosen.content_hash}")
    table = Table()
    for column in ("line", "model", "price"):
        table.add_column(column)
    for fee in book.fees:
        table.add_row(fee.name, "fee", f"{_money(fee.amount)} per period (prorated by day)")
    for charge in book.charges:
        table.add_row(charge.label, charge.model, _describe_charge(charge))
    print_table(console, table)


_ABSENT = object()  # a key or list item one version does not have (unlike a null value)


def _changes(before, after, path: str = "") -> list[tuple[str, object, object]]:
    """Leaf differences between two documents: (path, old, new)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            found += _changes(before.get(key, _ABSENT), after.get(key, _ABSENT), f"{path}.{key}" if path else key)
        return found
    if isinstance(before, list) and isinstance(after, list):
        found = []
        for index in range(max(len(before), len(after))):
            found += _changes(before[index] if index < len(before) else _ABSENT,
                              after[index] if index < len(after) else _ABSENT, f"{path}[{index}]")
        return found
    return [] if before == after else [(path, before, after)]


@pricebook_app.command("diff")
def diff_command(
    old: Annotated[str, typer.Argument(metavar="PLAN@A")],
    new: Annotated[str, typer.Argument(metavar="PLAN@B")],
    pricebooks: ConfigOption = None,
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """What changed between two versions (charges are matched by meter, fees by name)."""
    _, _, catalog = load_config(pricebooks)
    a, b = _resolve(catalog, old), _resolve(catalog, new)
    _refuse_edited(catalog, [a, b], db, wait)
    docs = []
    for chosen in (a, b):
        content = chosen.book.content()  # defaults included: an omitted key still has its value
        content["charges"] = {c["meter"]: c for c in content["charges"]}
        content["fees"] = {f["name"]: f for f in content["fees"]}
        docs.append(content)
    changes = [(p, x, y) for p, x, y in _changes(*docs) if p != "version"]
    if as_json:
        plain = lambda v: None if v is _ABSENT else v  # noqa: E731
        print_json({"from": a.ref, "to": b.ref,
                    "changes": [{"key": p, "from": plain(x), "to": plain(y)} for p, x, y in changes]})
        return
    console = stdout_console()
    if not changes:
        console.print(f"{a.ref} and {b.ref} price the same way")
        return
    table = Table(title=f"{a.ref} → {b.ref}")
    for column in ("key", a.ref, b.ref):
        table.add_column(column)
    show = lambda v: "-" if v is _ABSENT else json.dumps(v) if isinstance(v, (dict, list)) or v is None else str(v)  # noqa: E731
    for p, x, y in changes:
        table.add_row(p, show(x), show(y))
    print_table(console, table)


@pricebook_app.command("schema")
def schema_command() -> None:
    """Print a JSON Schema of pricebook files (for editors: yaml-language-server, IDEs)."""
    from meterctl.pricebook import schema

    print_json(schema())


# ---------------------------------------------------------------- rate


def _line_json(line) -> dict:
    document = line.canonical()
    document["pricebook"] = line.pricebook
    return document


def _summary_rows(result: RatingResult, per_customer: bool) -> list[dict]:
    """Totals per customer × period, or (the default, short enough for a cron log) per pricebook."""
    from meterctl.simulation import major

    rows: dict[tuple, dict] = {}
    for line in result.lines:
        if per_customer:
            key: tuple = (line.customer_id, line.period_start, line.period_end)
            first = {"customer_id": line.customer_id, "period": f"[{line.period_start}, {line.period_end})"}
        else:
            key = (line.pricebook, line.currency)
            first = {"pricebook": line.pricebook}
        row = rows.setdefault(key, {**first, "pricebooks": [], "customers": set(), "lines": 0, "minor": 0, "currency": line.currency})
        if line.pricebook not in row["pricebooks"]:
            row["pricebooks"].append(line.pricebook)
        row["customers"].add(line.customer_id)
        row["lines"] += 1
        row["minor"] += line.amount_minor
    for row in rows.values():
        row["amount"] = major(row.pop("minor"), row["currency"])
        row["customers"] = len(row["customers"])
    return list(rows.values()) if per_customer else sorted(rows.values(), key=lambda r: (r["currency"], r["pricebook"]))


def _listed(pairs: tuple[tuple[str, int], ...]) -> str:
    shown = ", ".join(f"{customer} ({count})" for customer, count in pairs[:5])
    return shown + (f" and {len(pairs) - 5} more" if len(pairs) > 5 else "")


def warn_unbilled(console, result: RatingResult) -> None:
    """Everything metered that no line will carry: said on stderr, never dropped in silence."""
    for u in result.unmeterable:
        console.print(f"warning: {u.events} unmeterable event(s) for {u.customer_id} / {u.meter} not billed: {u.reason}", style="yellow")
    for s in result.open_sessions:
        console.print(f"note: open session {s.session} of {s.customer_id} / {s.meter}, last seen {s.last_event_at}")
    if result.outside_subscriptions:
        total = sum(n for _, n in result.outside_subscriptions)
        console.print(f"warning: {total} event(s) in {result.period} fall outside their customer's subscriptions, so are "
                      f"not billed: {_listed(result.outside_subscriptions)} (see 'meterctl customers show ID')", style="yellow")
    for customer_id, why in result.unpriceable:
        console.print(f"warning: {customer_id} not rated: {why}", style="yellow")
    if result.unknown_customers:
        total = sum(n for _, n in result.unknown_customers)
        console.print(f"warning: {total} event(s) in {result.period} from customers that are not imported, so not billed: "
                      f"{_listed(result.unknown_customers)} (see 'meterctl customers import')", style="yellow")


def refuse_unpriceable(result: RatingResult) -> None:
    """Exit 65 once the others are done when some customer could not be priced: a cron job
    must not take a month with a missing bill for a finished one."""
    if result.unpriceable:
        shown = "; ".join(why for _, why in result.unpriceable[:3])
        more = f" (and {len(result.unpriceable) - 3} more)" if len(result.unpriceable) > 3 else ""
        raise DataError(f"{len(result.unpriceable)} customer(s) could not be priced and have no lines, so no bill, "
                        f"until their events are corrected; everyone else was rated. {shown}{more}")


def _note_open_periods(console, result: RatingResult) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    still_open = {(l.customer_id, l.period_start) for l in result.lines if l.billed_until_at > now}
    if still_open:
        console.print(f"note: {len(still_open)} billing period(s) have not ended yet: their usage may still grow")


def rate_command(
    period: PeriodOption,
    customer: CustomerOption = None,
    pricebooks: ConfigOption = None,
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    detail: Annotated[bool, typer.Option("--detail", help="A row per customer and period instead of per pricebook.")] = False,
) -> None:
    """Rate the billing periods that end in a month and record the run and its lines."""
    from meterctl.rating import rate

    _, meters, catalog = load_config(pricebooks)
    with store.open_store(db, wait=wait) as con:
        result = rate(con, catalog, meters, period, customers=customer)
    console = stderr_console()
    warn_unbilled(console, result)
    if not result.lines:
        refuse_unpriceable(result)
        raise DataError(f"no billing period ends in {period}{' for the chosen customers' if customer else ''}: nothing rated")
    for ref in result.newly_frozen:
        console.print(f"froze {ref}: its file may no longer change (publish a new version instead)")
    if as_json:
        print_json({"run_id": result.run_id, "run_hash": result.run_hash, "period": result.period,
                    "customers": result.customers_rated, "segments": result.segments,
                    "pricebooks": list(result.pricebooks),
                    "unpriceable": [{"customer_id": c, "reason": why} for c, why in result.unpriceable],
                    "lines": [_line_json(l) for l in result.lines]})
        refuse_unpriceable(result)
        return
    table = Table()
    columns = ("customer", "period", "pricebook", "lines", "amount", "currency") if detail else \
        ("pricebook", "customers", "lines", "amount", "currency")
    for column in columns:
        table.add_column(column, justify="right" if column in ("customers", "lines", "amount") else "left")
    for row in _summary_rows(result, detail):
        if detail:
            table.add_row(row["customer_id"], row["period"], ", ".join(row["pricebooks"]), str(row["lines"]), row["amount"], row["currency"])
        else:
            table.add_row(row["pricebook"], str(row["customers"]), str(row["lines"]), row["amount"], row["currency"])
    print_table(stdout_console(), table)
    console.print(f"rating run {result.run_id}: {result.customers_rated} customer(s), {result.segments} segment(s), "
                  f"{len(result.lines)} line(s); run hash {result.run_hash[:16]}")
    _note_open_periods(console, result)
    refuse_unpriceable(result)


# ---------------------------------------------------------------- simulate


def simulate_command(
    pricebook: Annotated[Path, typer.Option("--pricebook", help="The candidate pricebook file (need not be published).")],
    period: PeriodOption,
    customer: CustomerOption = None,
    pricebooks: ConfigOption = None,
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    fmt: Annotated[str | None, typer.Option("--format", help="csv: the comparison as CSV on stdout (or -o).")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write the CSV to this file.")] = None,
) -> None:
    """Rate a past month under a candidate pricebook, writing nothing: current vs candidate per customer."""
    from meterctl.pricebook import load_pricebook
    from meterctl.simulation import simulate

    if fmt not in (None, "csv"):
        raise UsageError(f"--format must be csv, not '{fmt}'")
    if as_json and (fmt or output):
        raise UsageError("--json prints JSON on stdout; --format csv and -o write CSV: choose one")
    path = check_output(output, instead="--format csv without -o prints the CSV on standard output")
    _, meters, catalog = load_config(pricebooks)
    candidate = load_pricebook(pricebook, meters)
    with store.open_store(db, read_only=True, wait=wait) as con:
        result = simulate(con, catalog, meters, candidate, period, customers=customer)
    console = stderr_console()
    if not result.rows:
        console.print(f"no customer on plan '{candidate.plan}' has a billing period ending in {period}")
    if fmt == "csv" or path is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["customer_id", "plan", "current_pricebook", "candidate_pricebook", "currency", "current", "candidate", "difference"])
        for r in result.rows:
            writer.writerow([r.customer_id, r.plan, r.current_pricebook, r.candidate_pricebook, r.currency, r.current, r.candidate, r.difference])
        for t in result.totals:  # one row per currency: amounts in different currencies never add up
            writer.writerow(["TOTAL", candidate.plan, "", candidate.ref, t.currency, t.current, t.candidate, t.difference])
        if path is not None:
            from meterctl.files import write_bytes_atomically

            write_bytes_atomically(path, buffer.getvalue().encode())
        else:
            typer.echo(buffer.getvalue(), nl=False)
        return
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{candidate.ref} (candidate, {candidate.path}) for periods ending in {period}")
    for column in ("customer", "current pricebook", "current", "candidate", "difference", "currency"):
        table.add_column(column, justify="right" if column in ("current", "candidate", "difference") else "left")
    for r in result.rows:
        table.add_row(r.customer_id, r.current_pricebook, r.current, r.candidate, r.difference, r.currency)
    for t in result.totals:
        table.add_row("total", "", t.current, t.candidate, t.difference, t.currency, end_section=False)
    print_table(stdout_console(), table)
