"""Generate the meterctl sample data set for October 2026.

Writes, next to this script (or into --out):

  events-2026-10.jsonl           a month of usage events with a documented share of dirty lines
  events-2026-10.parquet         the same clean, accepted events as Parquet
  events-2026-10.expected.json   expected ingest counts, every dirty line, per-customer totals
  cloudevents-2026-10.jsonl      ~200 CloudEvents-shaped records, all valid
  customers.yaml                 the 50 customers, their currencies, time zones and plans
  grants.yaml                    prepaid credits for a few of them (meterctl wallet import)
  README.md                      what all of this is, with the exact expected counts

Standard library + pyarrow only. Fully deterministic: the same seed gives the same bytes.

    python sample_data/generate.py            # regenerate everything (seed 20261001)
    python sample_data/generate.py --check    # regenerate, then re-read and verify the files
"""
from __future__ import annotations

import argparse
import json
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20261001
EVENTS_FILE = "events-2026-10.jsonl"
PARQUET_FILE = "events-2026-10.parquet"
EXPECTED_FILE = "events-2026-10.expected.json"
CLOUDEVENTS_FILE = "cloudevents-2026-10.jsonl"
CUSTOMERS_FILE = "customers.yaml"
README_FILE = "README.md"
GRANTS_FILE = "grants.yaml"
# A few prepaid credits, written as they are: hand-picked to show each kind on an invoice.
GRANTS_YAML = """# Prepaid credits for the sample month, as a payment system or CRM would export them
# (meterctl wallet import sample_data/grants.yaml). Each grant has its idempotency key, so
# importing the file again grants nothing more.
grants:
  # A purchased top-up: pays usage lines, never expires.
  - {customer: cus_000001, key: pi_sample_000001, amount: 10, name: Top-up, effective: 2026-09-20,
     reason: card payment pi_sample_000001}
  # An October promotion, 1,000 credits at 0.05 USD, that pays fees too and burns first;
  # beside it a 100 USD top-up, which pays what the promotion leaves of the usage lines.
  - {customer: cus_000002, key: promo_2026_10_000002, credits: 1000, rate: 0.05, name: October promotion,
     effective: 2026-10-01, expires: 2026-11-01, priority: 1, applies_to: [all]}
  - {customer: cus_000002, key: pi_sample_000002, amount: 100, name: Top-up, effective: 2026-09-01}
  # Token credits: 500,000 credits at 0.000002 USD for the tokens meter only.
  - {customer: cus_000017, key: tokens_000017, credits: 500000, rate: 0.000002, name: Token credits,
     effective: 2026-10-01, applies_to: [tokens]}
  # A top-up in yen, paid in whole yen.
  - {customer: cus_000026, key: pi_sample_000026, amount: 500, name: Top-up, effective: 2026-10-01}
"""

US = 1_000_000                      # microseconds per second
MIN = 60 * US
HOUR = 60 * MIN
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_us(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


MONTH_START = to_us(datetime(2026, 10, 1, tzinfo=timezone.utc))   # inclusive
MONTH_END = to_us(datetime(2026, 11, 1, tzinfo=timezone.utc))     # exclusive
EU_DST_END = to_us(datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc))
SYDNEY_DST_START = to_us(datetime(2026, 10, 3, 16, 0, tzinfo=timezone.utc))

# UTC offsets (minutes) during October 2026, hard-coded so the output does not depend on the
# tz database of the machine: (offset before, switch instant or None, offset after).
TZ_OFFSETS = {
    "UTC": (0, None, 0),
    "America/New_York": (-240, None, -240),      # EDT all month; DST ends 2026-11-01 06:00Z
    "America/Toronto": (-240, None, -240),
    "America/Chicago": (-300, None, -300),
    "America/Los_Angeles": (-420, None, -420),
    "America/Sao_Paulo": (-180, None, -180),
    "Europe/London": (60, EU_DST_END, 0),
    "Europe/Berlin": (120, EU_DST_END, 60),
    "Europe/Paris": (120, EU_DST_END, 60),
    "Europe/Amsterdam": (120, EU_DST_END, 60),
    "Europe/Madrid": (120, EU_DST_END, 60),
    "Asia/Kolkata": (330, None, 330),
    "Asia/Singapore": (480, None, 480),
    "Asia/Tokyo": (540, None, 540),
    "Australia/Sydney": (600, SYDNEY_DST_START, 660),
}


def tz_offset_min(tz: str, t_us: int) -> int:
    before, switch, after = TZ_OFFSETS[tz]
    return before if switch is None or t_us < switch else after


def region_of(tz: str) -> str:
    if tz.startswith("Europe/"):
        return "eu"
    if tz.startswith(("Asia/", "Australia/")):
        return "ap"
    return "us"


# --------------------------------------------------------------------------------------------
# customers

# (name, time zone, currency); cus_000001 is the first row.
CUSTOMER_ROWS = [
    ("Acme Corp", "America/New_York", "USD"),
    ("Globex Industries", "America/Chicago", "USD"),
    ("Initech Software", "America/Los_Angeles", "USD"),
    ("Umbrella Analytics", "America/New_York", "USD"),
    ("Müller & Söhne Logistik GmbH", "Europe/Berlin", "EUR"),
    ("Stark Robotics", "America/Los_Angeles", "USD"),
    ("Wayne Data Systems", "America/New_York", "USD"),
    ("Hooli Cloud", "America/Los_Angeles", "USD"),
    ("Sakura Denki K.K.", "Asia/Tokyo", "JPY"),
    ("Vandelay Imports", "America/New_York", "USD"),
    ("Blue Fjord Analytics", "Europe/London", "USD"),
    ("Cyberdyne Health", "America/Chicago", "USD"),
    ("Pied Piper Compression", "America/Los_Angeles", "USD"),
    ("Atelier Lumière SAS", "Europe/Paris", "EUR"),
    ("Soylent Foods", "America/Chicago", "USD"),
    ("Oceanic Freight", "Australia/Sydney", "USD"),
    ("Tyrell Biotech", "America/Los_Angeles", "USD"),
    ("Kaveri Fintech Pvt Ltd", "Asia/Kolkata", "USD"),
    ("Duff Beverages", "America/New_York", "USD"),
    ("Van Dijk Mobility B.V.", "Europe/Amsterdam", "EUR"),
    ("Massive Dynamic", "America/New_York", "USD"),
    ("Aperture Labs", "America/Chicago", "USD"),
    ("Merlion Payments Pte Ltd", "Asia/Singapore", "USD"),
    ("Gringotts Ledger Ltd", "Europe/London", "USD"),
    ("Wonka Confectionery", "America/New_York", "USD"),
    ("Fuji Mirai Robotics", "Asia/Tokyo", "JPY"),
    ("Paper Street Soap Co.", "America/Los_Angeles", "USD"),
    ("Sterling Cooper Media", "America/New_York", "USD"),
    ("Ipanema Mobile Ltda", "America/Sao_Paulo", "USD"),
    ("Bluth Property Group", "America/Los_Angeles", "USD"),
    ("Dunder Mifflin Paper", "America/New_York", "USD"),
    ("Oscorp Materials", "America/New_York", "USD"),
    ("Nakatomi Trading", "America/Los_Angeles", "USD"),
    ("Tessellate Design Studio", "Europe/London", "USD"),
    ("Praxis Learning", "America/Chicago", "USD"),
    ("Northwind Traders", "America/Toronto", "USD"),
    ("Contoso Retail", "America/Chicago", "USD"),
    ("Fabrikam Labs", "America/Los_Angeles", "USD"),
    ("Hernández Viajes S.L.", "Europe/Madrid", "EUR"),
    ("Prestige Worldwide", "America/Los_Angeles", "USD"),
    ("Zenith Solar", "UTC", "USD"),
    ("Quantum Leaf Games", "America/Toronto", "USD"),
    ("Bright Harbor Clinics", "America/New_York", "USD"),
    ("Kestrel Security", "UTC", "USD"),
    ("Yellowstone Outfitters", "America/Chicago", "USD"),
    ("Lighthouse Notes", "Europe/London", "USD"),
    ("Cobalt Ridge Mining", "Australia/Sydney", "USD"),
    ("Piccolo Bistro Group", "America/New_York", "USD"),
    ("Tiny Tern Apps", "UTC", "USD"),
    ("Maple & Pine Crafts", "America/Toronto", "USD"),
]

PLAN_CHANGE_CUSTOMER = "cus_000017"      # starter -> pro on 2026-10-15; usage doubles after
PLAN_CHANGE_DAY = date(2026, 10, 15)
NEW_CUSTOMER = "cus_000044"              # first subscription starts 2026-10-20 (mid-period)
NEW_CUSTOMER_START = date(2026, 10, 20)
IDLE_CUSTOMER = "cus_000049"             # subscribed, but sends no events in October
ANNIVERSARY = {                          # anniversary billing, anchored on the start day
    "cus_000003": date(2025, 1, 31),     # month-end anchor: Oct 31 -> Nov 30
    "cus_000009": date(2026, 3, 31),
    "cus_000021": date(2025, 11, 29),
    "cus_000030": date(2026, 2, 28),
    "cus_000038": date(2026, 8, 15),
}


@dataclass
class Customer:
    id: str
    name: str
    tz: str
    currency: str
    rank: int = 0                       # 1 = biggest
    weight: float = 0.0                 # share of usage, sums to 1 over active customers
    billing: str = "calendar"
    subscriptions: list = field(default_factory=list)   # [(plan, start, end|None)]
    active_from: int = MONTH_START      # first instant (µs) it can send events
    uses_llm: bool = False
    uses_gpu: bool = False
    storage_per_day: int = 1
    users: list = field(default_factory=list)


def make_customers(rng: random.Random) -> list[Customer]:
    customers = [Customer(f"cus_{i:06d}", n, tz, cur) for i, (n, tz, cur) in enumerate(CUSTOMER_ROWS, 1)]
    by_id = {c.id: c for c in customers}
    ranks = list(range(1, len(customers) + 1))
    rng.shuffle(ranks)
    for c, r in zip(customers, ranks):
        c.rank = r

    def pin(cid: str, rank: int) -> None:      # swap ranks so that `cid` gets `rank`
        other = next(c for c in customers if c.rank == rank)
        other.rank, by_id[cid].rank = by_id[cid].rank, rank

    pin(IDLE_CUSTOMER, 50)
    pin(PLAN_CHANGE_CUSTOMER, 14)
    pin(NEW_CUSTOMER, 31)

    raw = {c.id: 1.0 / c.rank ** 1.15 for c in customers if c.id != IDLE_CUSTOMER}
    total = sum(raw.values())
    for c in customers:
        c.weight = raw.get(c.id, 0.0) / total
        c.uses_llm = c.id != IDLE_CUSTOMER and (c.rank <= 8 or rng.random() < 0.7)
        c.uses_gpu = c.id != IDLE_CUSTOMER and (c.rank <= 3 or (c.rank <= 20 and rng.random() < 0.4)
                                                or rng.random() < 0.08)
        c.storage_per_day = 3 if (c.rank <= 10 or rng.random() < 0.2) else 1
        n_users = max(1, round(2 + 160 * c.weight + rng.random() * 3))
        c.users = [f"usr_{rng.getrandbits(40):010x}" for _ in range(n_users)]

        plan = "scale" if c.rank <= 4 else "pro" if c.rank <= 17 else "starter"
        if c.id in ANNIVERSARY:
            c.billing = "anniversary"
            start = ANNIVERSARY[c.id]
        else:
            start = date(2024, 1, 1) + timedelta(days=rng.randrange((date(2026, 9, 30) - date(2024, 1, 1)).days))
        if c.id == PLAN_CHANGE_CUSTOMER:
            c.subscriptions = [("starter", start, PLAN_CHANGE_DAY), ("pro", PLAN_CHANGE_DAY, None)]
        elif c.id == NEW_CUSTOMER:
            c.subscriptions = [("starter", NEW_CUSTOMER_START, None)]
            local_midnight = to_us(datetime(2026, 10, 20, tzinfo=timezone.utc))
            c.active_from = local_midnight - tz_offset_min(c.tz, local_midnight) * MIN
        elif plan == "scale" and start < date(2025, 6, 1):
            # grew into scale earlier: an older, closed subscription first
            up = start + timedelta(days=120 + rng.randrange(200))
            c.subscriptions = [("pro", start, up), ("scale", up, None)]
        else:
            c.subscriptions = [(plan, start, None)]
        if c.currency != "USD":
            # A pricebook prices in one currency: EUR and JPY customers are on the plan's local edition.
            c.subscriptions = [(f"{p}_{c.currency.lower()}", s, e) for p, s, e in c.subscriptions]
    return customers


def yaml_scalar(s: str) -> str:
    plain_ok = s[:1].isalnum() and not any(ch in s for ch in ":#&*!|>'\"%@`{}[],?")
    return s if plain_ok else json.dumps(s, ensure_ascii=False)


def customers_yaml(customers: list[Customer], seed: int) -> str:
    out = [f"# Generated by sample_data/generate.py (seed {seed}); do not edit by hand.",
           "# Subscriptions are half-open [start, end): a plan with `end` stops the day before it.",
           "customers:"]
    for c in customers:
        out += [f"  - id: {c.id}",
                f"    name: {yaml_scalar(c.name)}",
                f"    currency: {c.currency}",
                f"    timezone: {c.tz}",
                f"    billing: {c.billing}",
                "    subscriptions:"]
        for plan, start, end in c.subscriptions:
            tail = f", end: {end.isoformat()}" if end else ""
            out.append(f"      - {{plan: {plan}, start: {start.isoformat()}{tail}}}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# events

@dataclass
class Event:
    event_id: str
    customer_id: str
    event_name: str
    t_us: int                           # the instant, µs since the epoch (UTC)
    ts_json: str                        # the timestamp as JSON text: "..." or an integer
    ts_kind: str                        # z | offset | epoch_ms
    qty_json: str | None                # quantity as JSON text, None = omitted
    quantity: Decimal | None
    props: list                         # [(key, value)], value str | int | Decimal
    props_json: str | None
    arrival: int = 0
    seq: int = 0

    def line(self, *, omit: str | None = None, qty_json: str | None = "keep") -> str:
        q = self.qty_json if qty_json == "keep" else qty_json
        parts = [("event_id", json.dumps(self.event_id)),
                 ("customer_id", json.dumps(self.customer_id)),
                 ("event_name", json.dumps(self.event_name)),
                 ("timestamp", self.ts_json)]
        if q is not None:
            parts.append(("quantity", q))
        if self.props_json is not None:
            parts.append(("properties", self.props_json))
        return "{" + ",".join(f'"{k}":{v}' for k, v in parts if k != omit) + "}"


def json_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool) or v is None:
        raise TypeError(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        return decimal_text(v)
    raise TypeError(type(v))


def json_object(pairs: list) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{json_value(v)}" for k, v in pairs) + "}"


def decimal_text(d: Decimal) -> str:
    """Shortest plain text for d (12.50 -> 12.5, 120.00 -> 120), never an exponent."""
    s = f"{d:f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def iso_text(t_us: int, offset_min: int | None) -> str:
    """RFC 3339: Z when offset_min is None, else local time with ±HH:MM. Fraction only as needed."""
    local = t_us + (offset_min or 0) * MIN
    dt = EPOCH + timedelta(microseconds=local)
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac = local % US
    if frac % 1000:
        s += f".{frac:06d}"
    elif frac:
        s += f".{frac // 1000:03d}"
    if offset_min is None:
        return s + "Z"
    sign = "+" if offset_min >= 0 else "-"
    return s + f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"


# relative activity by local hour (business hours heavier); weekends at 45 %
HOUR_WEIGHT = [0.18, 0.14, 0.12, 0.12, 0.14, 0.2, 0.3, 0.5, 0.8, 0.95, 1.0, 1.0,
               0.95, 1.0, 1.0, 0.95, 0.9, 0.8, 0.65, 0.5, 0.42, 0.35, 0.28, 0.22]


class Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.ids: set[str] = set()
        self.seq = 0

    def new_id(self) -> str:
        while True:
            eid = f"evt_{self.rng.getrandbits(80):020x}"
            if eid not in self.ids:
                self.ids.add(eid)
                return eid

    def sample_time(self, c: Customer, start: int = MONTH_START, end: int = MONTH_END,
                    diurnal: bool = True) -> int:
        """A millisecond-aligned instant in [start, end), weighted by the customer's local clock."""
        rng = self.rng
        span_ms = (end - start) // 1000
        while True:
            t = start + rng.randrange(span_ms) * 1000
            if not diurnal:
                return t
            local = EPOCH + timedelta(microseconds=t + tz_offset_min(c.tz, t) * MIN)
            w = HOUR_WEIGHT[local.hour] * (0.45 if local.weekday() >= 5 else 1.0)
            if rng.random() < w:
                return t

    def render_time(self, c: Customer, t_us: int) -> tuple[str, str]:
        rng = self.rng
        near_edge = t_us - MONTH_START < 14 * HOUR or MONTH_END - t_us <= 14 * HOUR
        r = rng.random()
        if r < 0.0015 and t_us % 1000 == 0:
            return str(t_us // 1000), "epoch_ms"
        if r < (0.30 if near_edge else 0.05):
            return json.dumps(iso_text(t_us, tz_offset_min(c.tz, t_us))), "offset"
        return json.dumps(iso_text(t_us, None)), "z"

    def event(self, c: Customer, name: str, t_us: int, quantity, props: list,
              *, qty_as_string: bool = False) -> Event:
        ts_json, kind = self.render_time(c, t_us)
        if quantity is None:
            qty_json, qty = None, None
        else:
            qty = Decimal(quantity)
            qty_json = json.dumps(decimal_text(qty)) if qty_as_string else decimal_text(qty)
        self.seq += 1
        return Event(self.new_id(), c.id, name, t_us, ts_json, kind, qty_json, qty,
                     props, json_object(props) if props else None, seq=self.seq)

    def maybe_us(self, t_us: int) -> int:
        """About 2 % of instants get microsecond precision (some SDKs send 6 digits)."""
        return t_us + self.rng.randrange(1, 1000) if self.rng.random() < 0.02 else t_us

    def other_region(self, home: str) -> str:
        return home if self.rng.random() < 0.85 else self.rng.choice(["us", "eu", "ap"])


ENDPOINTS = [("/v1/orders", 30), ("/v1/search", 25), ("/v1/users", 15), ("/v1/reports", 8),
             ("/v1/webhooks", 12), ("/v1/files", 10)]
MODELS = [("gpt-small", 50), ("gpt-large", 25), ("embed", 25)]
GPUS = ["a100", "h100", "l4"]

API_TOTAL = 17_000
LLM_TOTAL = 9_000
GPU_JOBS = 80


def weighted(rng: random.Random, pairs):
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def rate_factor(c: Customer, t_us: int) -> float:
    return 2.0 if c.id == PLAN_CHANGE_CUSTOMER and t_us >= PLAN_CHANGE_US else 1.0


# the upgrade takes effect at local midnight of 2026-10-15 (cus_000017 is in America/Los_Angeles)
PLAN_CHANGE_US = to_us(datetime(2026, 10, 15, tzinfo=timezone.utc)) + 420 * MIN


def usage_times(g: Gen, c: Customer, n: int) -> list[int]:
    """n instants for c; the plan-change customer sends twice as much after the upgrade."""
    out = []
    while len(out) < n:
        t = g.sample_time(c, c.active_from)
        if rate_factor(c, t) >= 2.0 or g.rng.random() < 0.5 or c.id != PLAN_CHANGE_CUSTOMER:
            out.append(t)
    return out


def clean_events(g: Gen, customers: list[Customer]) -> list[Event]:
    rng = g.rng
    events: list[Event] = []
    active = [c for c in customers if c.id != IDLE_CUSTOMER]
    llm_weight = sum(c.weight for c in active if c.uses_llm)
    gpu_weight = sum(c.weight for c in active if c.uses_gpu)
    for c in active:
        home = region_of(c.tz)
        frac_active = (MONTH_END - c.active_from) / (MONTH_END - MONTH_START)

        # api_call: quantity 1 or omitted
        n_api = max(4, round(API_TOTAL * c.weight * frac_active * rng.uniform(0.85, 1.15)))
        sends_qty = rng.random() < 0.6          # an SDK either sends quantity 1 or leaves it out
        for t in usage_times(g, c, n_api):
            q = 1 if (sends_qty if rng.random() < 0.9 else not sends_qty) else None
            events.append(g.event(c, "api_call", g.maybe_us(t), q,
                                  [("endpoint", weighted(rng, ENDPOINTS)), ("region", g.other_region(home))]))

        # llm_tokens: quantity = tokens
        if c.uses_llm:
            n_llm = max(3, round(LLM_TOTAL * c.weight / llm_weight * frac_active * rng.uniform(0.8, 1.2)))
            for t in usage_times(g, c, n_llm):
                model = weighted(rng, MODELS)
                median = {"gpt-small": 900, "gpt-large": 2400, "embed": 350}[model]
                tokens = max(1, min(128_000, round(rng.lognormvariate(0, 0.9) * median)))
                events.append(g.event(c, "llm_tokens", g.maybe_us(t), tokens,
                                      [("model", model), ("region", g.other_region(home))],
                                      qty_as_string=rng.random() < 0.002))

        # gpu_heartbeat: one every 30 s while a job runs, no quantity
        if c.uses_gpu:
            n_jobs = max(1, round(GPU_JOBS * c.weight / gpu_weight * rng.uniform(0.7, 1.3)))
            for _ in range(n_jobs):
                job_id = f"job_{rng.getrandbits(32):08x}"
                gpu = rng.choice(GPUS)
                minutes = max(3.0, min(360.0, rng.lognormvariate(3.7, 0.8)))   # median ~40 min
                start = g.sample_time(c, c.active_from)
                for k in range(int(minutes * 2)):
                    t = start + k * 30 * US
                    if t >= MONTH_END:
                        break
                    events.append(g.event(c, "gpu_heartbeat", t, None, [("job_id", job_id), ("gpu", gpu)]))

        # storage_report: gb in properties, once or three times a day, whole seconds
        base = 5 + 4000 * c.weight * rng.uniform(0.5, 1.5) + rng.uniform(0, 40)
        growth = rng.uniform(-0.002, 0.02)                   # per day
        day = c.active_from - c.active_from % DAY
        while day < MONTH_END:
            for slot in range(c.storage_per_day):
                t = day + (slot * 8) * HOUR + 5 * MIN + rng.randrange(0, 90) * US
                if not (c.active_from <= t < MONTH_END):
                    continue
                days = (t - MONTH_START) / DAY
                gb = Decimal(round(base * (1 + growth * days) * rng.uniform(0.995, 1.005) * 100)) / 100
                events.append(g.event(c, "storage_report", t, None, [("gb", gb)]))
            day += DAY

        # login: user_id, for a unique-user meter
        for user in c.users:
            for t in usage_times(g, c, rng.choice([1, 2, 3, 5, 8, 12, 20])):
                events.append(g.event(c, "login", t, None, [("user_id", user)]))

    # file order: by arrival (instant + delivery lag), so mostly in time order with late stragglers
    for e in events:
        r = rng.random()
        if r < 0.95:
            lag = rng.randrange(0, 5 * US)
        elif r < 0.99:
            lag = rng.randrange(5 * US, 10 * MIN)
        else:
            lag = rng.randrange(HOUR, 3 * DAY)          # a backfilled batch
        e.arrival = e.t_us + lag
    events.sort(key=lambda e: (e.arrival, e.seq))
    return events


# --------------------------------------------------------------------------------------------
# dirty lines

@dataclass
class Placed:
    pos: float
    text: str                    # the physical line without newline ("" = blank line)
    kind: str                    # clean | identical_resend | conflicting_resend | blank | dead-letter kinds
    event_id: str | None = None
    original: int | None = None  # index into clean events, for resends
    note: str = ""
    line_no: int = 0


DEAD_KINDS = ["malformed_json", "missing_field", "non_numeric_quantity", "far_future_timestamp",
              "json_array"]


def build_stream(g: Gen, clean: list[Event], customers: list[Customer]) -> list[Placed]:
    rng = g.rng
    n = len(clean)
    placed = [Placed(float(k), e.line(), "clean", e.event_id, k) for k, e in enumerate(clean)]

    def after(k: int) -> float:
        r = rng.random()
        d = rng.randint(1, 30) if r < 0.5 else rng.randint(31, 2000) if r < 0.85 else rng.randint(2001, 20000)
        return min(k + d, n - 1) + rng.uniform(0.01, 0.99)

    # exactly one conflicting resend: an llm_tokens event, sent again later with another quantity
    candidates = [k for k, e in enumerate(clean)
                  if e.event_name == "llm_tokens" and e.qty_json and not e.qty_json.startswith('"')
                  and e.ts_kind == "z" and k < n - 5000]
    ck = rng.choice(candidates)
    orig = clean[ck]
    new_q = orig.quantity + rng.randint(100, 900)
    placed.append(Placed(after(ck), orig.line(qty_json=decimal_text(new_q)), "conflicting_resend",
                         orig.event_id, ck, f"quantity {decimal_text(orig.quantity)} -> {decimal_text(new_q)}"))

    # identical resends: the exact same line again, later (1.5 % of clean lines, distinct originals)
    n_resend = round(n * 0.015)
    pool = [k for k in range(n) if k != ck]
    for k in sorted(rng.sample(pool, n_resend)):
        placed.append(Placed(after(k), clean[k].line(), "identical_resend", clean[k].event_id, k))

    # dead letters: realistic events with fresh ids, damaged, at random positions
    active = [c for c in customers if c.id != IDLE_CUSTOMER]

    def fresh(name: str | None = None) -> Event:
        c = rng.choices(active, weights=[c.weight for c in active])[0]
        name = name or rng.choice(["api_call", "llm_tokens", "login"])
        t = g.sample_time(c)
        if name == "api_call":
            return g.event(c, name, t, 1, [("endpoint", weighted(rng, ENDPOINTS)), ("region", region_of(c.tz))])
        if name == "llm_tokens":
            return g.event(c, name, t, rng.randint(50, 5000), [("model", weighted(rng, MODELS)),
                                                               ("region", region_of(c.tz))])
        return g.event(c, "login", t, None, [("user_id", rng.choice(c.users))])

    def anywhere() -> float:
        return rng.randrange(n) + rng.uniform(0.01, 0.99)

    for _ in range(4):
        e = fresh()
        text = e.line()
        while True:
            cut = rng.randint(len(text) // 5, len(text) - 2)
            try:
                json.loads(text[:cut])
            except ValueError:
                break
        placed.append(Placed(anywhere(), text[:cut], "malformed_json", e.event_id,
                             note=f"truncated after {cut} of {len(text)} characters"))
    for missing in ["customer_id", "customer_id", "event_name", "timestamp", "event_id"]:
        e = fresh()
        placed.append(Placed(anywhere(), e.line(omit=missing), "missing_field", e.event_id,
                             note=f"no {missing}"))
    e = fresh("llm_tokens")
    placed.append(Placed(anywhere(), e.line(qty_json='"lots"'), "non_numeric_quantity", e.event_id,
                         note='"quantity":"lots"'))
    e = fresh("api_call")
    future = to_us(datetime(2099, 10, 14, 9, 30, tzinfo=timezone.utc)) + rng.randrange(3600) * US
    e.ts_json = json.dumps(iso_text(future, None))
    placed.append(Placed(anywhere(), e.line(), "far_future_timestamp", e.event_id,
                         note=f"timestamp {json.loads(e.ts_json)}"))
    a, b = fresh("api_call"), fresh("api_call")
    placed.append(Placed(anywhere(), "[" + a.line() + "," + b.line() + "]", "json_array", None,
                         note=f"array of 2 event objects ({a.event_id}, {b.event_id})"))

    # two blank lines (not records; not counted as lines read)
    for _ in range(2):
        placed.append(Placed(anywhere(), "", "blank"))

    placed.sort(key=lambda p: p.pos)
    for i, p in enumerate(placed, 1):
        p.line_no = i
    return placed


# --------------------------------------------------------------------------------------------
# CloudEvents

CE_SOURCES = {"us": "/billing/edge-us", "eu": "/billing/edge-eu", "ap": "/billing/edge-ap"}


def cloudevents(rng: random.Random, customers: list[Customer]) -> tuple[list[str], dict]:
    g = Gen(0)
    g.rng = rng
    active = [c for c in customers if c.id != IDLE_CUSTOMER]
    weights = [c.weight ** 0.6 for c in active]       # flatter than the main file
    recs = []

    def add(c: Customer, typ: str, t: int, qty, props: list, source: str | None = None):
        recs.append({"c": c, "type": typ, "t": t, "qty": qty, "props": props,
                     "source": source or CE_SOURCES[region_of(c.tz)],
                     "id": str(uuid.UUID(int=rng.getrandbits(128), version=4))})

    plan = ["api_call"] * 90 + ["llm_tokens"] * 50 + ["storage_report"] * 16 + ["login"] * 20
    for typ in plan:
        c = rng.choices(active, weights=weights)[0]
        t = g.sample_time(c, c.active_from)
        home = region_of(c.tz)
        if typ == "api_call":
            add(c, typ, t, 1, [("endpoint", weighted(rng, ENDPOINTS)), ("region", home)])
        elif typ == "llm_tokens":
            model = weighted(rng, MODELS)
            add(c, typ, t, rng.randint(40, 6000), [("model", model), ("region", home)])
        elif typ == "storage_report":
            t -= t % US
            add(c, typ, t, None, [("gb", Decimal(rng.randint(500, 900_000)) / 100)])
        else:
            add(c, typ, t, None, [("user_id", rng.choice(c.users))])
    # one short GPU job: 24 heartbeats (12 minutes), from the scheduler's own source
    c = next(c for c in active if c.uses_gpu and c.rank > 3)
    start = g.sample_time(c)
    job = f"job_{rng.getrandbits(32):08x}"
    for k in range(24):
        add(c, "gpu_heartbeat", start + k * 30 * US, None, [("job_id", job), ("gpu", "l4")],
            source="/billing/gpu-scheduler")
    recs.sort(key=lambda r: (r["t"], r["id"]))
    # CloudEvents are keyed by (source, id): give two records in different sources the same id.
    first = next(r for r in recs if r["source"] == "/billing/edge-us")
    second = next(r for r in recs if r["source"] == "/billing/edge-eu")
    second["id"] = first["id"]

    lines, by_type = [], Counter()
    for i, r in enumerate(recs):
        off = tz_offset_min(r["c"].tz, r["t"]) if i % 25 == 7 else None
        data = []
        if r["qty"] is not None:
            data.append(("quantity", r["qty"]))
        data.append(("properties", r["props"]))
        data_json = "{" + ",".join(
            f'"{k}":' + (json_object(v) if k == "properties" else json_value(v)) for k, v in data) + "}"
        lines.append("{" + ",".join([
            '"specversion":"1.0"',
            f'"id":{json.dumps(r["id"])}',
            f'"source":{json.dumps(r["source"])}',
            f'"type":{json.dumps(r["type"])}',
            f'"subject":{json.dumps(r["c"].id)}',
            f'"time":{json.dumps(iso_text(r["t"], off))}',
            '"datacontenttype":"application/json"',
            f'"data":{data_json}']) + "}")
        by_type[r["type"]] += 1
    info = {"records": len(lines), "by_type": dict(sorted(by_type.items())),
            "shared_id": first["id"], "shared_id_lines": sorted(recs.index(r) + 1 for r in (first, second)),
            "sources": sorted({r["source"] for r in recs})}
    return lines, info


# --------------------------------------------------------------------------------------------
# outputs

def write_parquet(path: Path, clean: list[Event]) -> None:
    schema = pa.schema([
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("quantity", pa.decimal128(38, 18), nullable=True),
        pa.field("properties", pa.string(), nullable=True),
    ])
    table = pa.table([
        pa.array([e.event_id for e in clean], pa.string()),
        pa.array([e.customer_id for e in clean], pa.string()),
        pa.array([e.event_name for e in clean], pa.string()),
        pa.array([e.t_us for e in clean], pa.timestamp("us", tz="UTC")),
        pa.array([e.quantity for e in clean], pa.decimal128(38, 18)),
        pa.array([e.props_json for e in clean], pa.string()),
    ], schema=schema)
    pq.write_table(table, path, compression="zstd", row_group_size=100_000)


def summarize(clean: list[Event], placed: list[Placed]) -> dict:
    kinds = Counter(p.kind for p in placed)
    dead = sum(kinds[k] for k in DEAD_KINDS)
    lines_read = sum(1 for p in placed if p.kind != "blank")
    expected = {
        "physical_lines": len(placed),
        "blank_lines": kinds["blank"],
        "lines_read": lines_read,
        "accepted": kinds["clean"],
        "identical_duplicates": kinds["identical_resend"],
        "conflicts": kinds["conflicting_resend"],
        "dead_lettered": dead,
        "dead_lettered_by_kind": {k: kinds[k] for k in DEAD_KINDS},
    }
    assert lines_read == expected["accepted"] + expected["identical_duplicates"] + expected["conflicts"] + dead
    return expected


def per_customer(clean: list[Event]) -> dict:
    agg: dict = defaultdict(lambda: defaultdict(lambda: {"events": 0, "quantity_sum": Decimal(0),
                                                         "with_quantity": 0, "values": set()}))
    for e in clean:
        a = agg[e.customer_id][e.event_name]
        a["events"] += 1
        if e.quantity is not None:
            a["quantity_sum"] += e.quantity
            a["with_quantity"] += 1
        if e.event_name == "login":
            a["values"].add(e.props[0][1])
        elif e.event_name == "gpu_heartbeat":
            a["values"].add(e.props[0][1])
        elif e.event_name == "storage_report":
            a.setdefault("max_gb", Decimal(0))
            a["max_gb"] = max(a["max_gb"], e.props[0][1])
    out = {}
    for cid in sorted(agg):
        out[cid] = {}
        for name in sorted(agg[cid]):
            a = agg[cid][name]
            row = {"events": a["events"]}
            if a["with_quantity"]:
                row["events_with_quantity"] = a["with_quantity"]
                row["quantity_sum"] = decimal_text(a["quantity_sum"])
            if name == "login":
                row["distinct_user_id"] = len(a["values"])
            if name == "gpu_heartbeat":
                row["distinct_job_id"] = len(a["values"])
            if name == "storage_report":
                row["max_gb"] = decimal_text(a["max_gb"])
            out[cid][name] = row
    return out


def by_event_name(clean: list[Event]) -> dict:
    out: dict = {}
    for e in clean:
        r = out.setdefault(e.event_name, {"events": 0, "quantity_omitted": 0, "quantity_sum": Decimal(0)})
        r["events"] += 1
        if e.quantity is None:
            r["quantity_omitted"] += 1
        else:
            r["quantity_sum"] += e.quantity
    return {k: {**v, "quantity_sum": decimal_text(v["quantity_sum"])} for k, v in sorted(out.items())}


def line_ranges(nums: list[int]) -> str:
    return ", ".join(str(x) for x in nums)


def readme(seed: int, expected: dict, placed: list[Placed], clean: list[Event], customers: list[Customer],
           ce_info: dict, sizes: dict, stats: dict) -> str:
    by_kind = defaultdict(list)
    for p in placed:
        by_kind[p.kind].append(p)
    first_line = {p.original: p.line_no for p in placed if p.kind == "clean"}
    names = by_event_name(clean)
    biggest = sorted((c for c in customers if c.id != IDLE_CUSTOMER), key=lambda c: c.rank)[:5]
    counts_by_cust = Counter(e.customer_id for e in clean)
    kind_rows = {
        "malformed_json": "malformed JSON (line truncated)",
        "missing_field": "missing required field",
        "non_numeric_quantity": "non-numeric quantity",
        "far_future_timestamp": "timestamp far in the future (2099)",
        "json_array": "JSON array instead of an object",
    }
    L = []
    w = L.append
    w("# Sample data: October 2026")
    w("")
    w("Generated by [`generate.py`](generate.py) — standard library + pyarrow, fully deterministic.")
    w(f"Seed **{seed}**; the same seed gives the same bytes. **Do not edit these files by hand**:")
    w("change the generator and run it again (it also rewrites this README).")
    w("")
    w("```sh")
    w(".venv/bin/python sample_data/generate.py            # regenerate everything in sample_data/")
    w(".venv/bin/python sample_data/generate.py --check    # ... and re-read + verify what was written")
    w(".venv/bin/python sample_data/generate.py --seed 7 --out /tmp/sd   # another data set elsewhere")
    w("```")
    w("")
    w("## Files")
    w("")
    w("| file | what it holds | size |")
    w("| --- | --- | --- |")
    w(f"| `{EVENTS_FILE}` | {expected['physical_lines']:,} physical lines: {expected['accepted']:,} clean events "
      f"+ deliberate dirty lines (below) + {expected['blank_lines']} blank lines | {sizes[EVENTS_FILE]:,} B |")
    w(f"| `{PARQUET_FILE}` | the {expected['accepted']:,} clean, accepted events only (no dirty lines, no resends), "
      f"same order as their first appearance in the JSONL | {sizes[PARQUET_FILE]:,} B |")
    w(f"| `{EXPECTED_FILE}` | machine-readable expectations: ingest counts, every dirty line "
      f"(line, kind, event_id, original line), per customer × event_name totals | {sizes[EXPECTED_FILE]:,} B |")
    w(f"| `{CLOUDEVENTS_FILE}` | {ce_info['records']} CloudEvents-shaped records, all valid | {sizes[CLOUDEVENTS_FILE]:,} B |")
    w(f"| `{CUSTOMERS_FILE}` | the 50 customers: name, currency, time zone, billing cycle, subscriptions | "
      f"{sizes[CUSTOMERS_FILE]:,} B |")
    w(f"| `{GRANTS_FILE}` | prepaid credits of four customers: a top-up, an expiring promotion that pays fees too, "
      f"token credits at a rate, a top-up in yen (`meterctl wallet import`) | {sizes[GRANTS_FILE]:,} B |")
    w("")
    w(f"## Expected outcome: ingesting `{EVENTS_FILE}` into an empty store")
    w("")
    w("| | count |")
    w("| --- | ---: |")
    w(f"| lines read (non-blank lines) | **{expected['lines_read']:,}** |")
    w(f"| accepted (new events) | **{expected['accepted']:,}** |")
    w(f"| identical duplicates | **{expected['identical_duplicates']:,}** |")
    w(f"| conflicts | **{expected['conflicts']}** |")
    w(f"| dead-lettered | **{expected['dead_lettered']}** |")
    w("")
    w(f"{expected['lines_read']:,} = {expected['accepted']:,} + {expected['identical_duplicates']:,} + "
      f"{expected['conflicts']} + {expected['dead_lettered']}. The file has {expected['physical_lines']:,} physical "
      f"lines; the {expected['blank_lines']} blank ones are not records and are not counted. Ingesting the same file "
      "a second time is skipped as a whole (same content hash). Ingesting the Parquet file into an empty store "
      f"accepts {expected['accepted']:,} events and nothing else; ingesting it after the JSONL file accepts 0 and "
      f"finds {expected['accepted']:,} identical duplicates (same events, same canonical payload). "
      "That needs a canonical payload built from values, not text: the timestamp as an instant (an offset or "
      "epoch-ms timestamp and its Parquet value are the same instant), the quantity as a number (`\"1454\"`, "
      "`1454` and decimal 1454.000000000000000000 are equal) and the properties as a JSON object.")
    w("")
    w("Line numbers below are 1-based physical line numbers (blank lines count, as in `sed -n 'Np'`).")
    w("")
    w("## Dirty lines deliberately included")
    w("")
    w("| kind | count | outcome | line numbers |")
    w("| --- | ---: | --- | --- |")
    res = by_kind["identical_resend"]
    w(f"| identical resend (the exact same line again, later) | {len(res)} | identical duplicate | "
      "all listed below |")
    for p in by_kind["conflicting_resend"]:
        w(f"| conflicting resend (same `event_id`, different quantity) | 1 | conflict | {p.line_no} "
          f"(first version on line {first_line[p.original]}; {p.note}; the first version stays billed) |")
    for k in DEAD_KINDS:
        ps = by_kind[k]
        detail = "; ".join(f"{p.line_no}: {p.note}" for p in ps)
        w(f"| {kind_rows[k]} | {len(ps)} | dead letter | {detail} |")
    w(f"| blank line | {expected['blank_lines']} | skipped, not counted | "
      f"{line_ranges([p.line_no for p in by_kind['blank']])} |")
    w("")
    w(f"Dead letters: {expected['dead_lettered']} = " + " + ".join(
        f"{expected['dead_lettered_by_kind'][k]} {k}" for k in DEAD_KINDS) + ". "
      "Every dead-lettered line uses an `event_id` that appears nowhere else, so none of them hides a billable "
      "event. The far-future line is rejected by the default upper bound (a few minutes after the time of ingest). "
      "The JSON array holds two otherwise valid event objects; one line is one record, so the line is dead-lettered "
      "as a whole.")
    w("")
    w("Resent originals are distinct (no line is resent twice) and the conflicting event is never also resent. "
      "Half of the resends follow their original within 30 lines (a client retry), the rest up to ~20,000 lines "
      "later.")
    w("")
    w(f"<details><summary>The {len(res)} identical resends: line (original line)</summary>")
    w("")
    w(", ".join(f"{p.line_no} ({first_line[p.original]})" for p in res))
    w("")
    w("</details>")
    w("")
    w(f"## `{EVENTS_FILE}`: what the clean events look like")
    w("")
    w("One JSON object per line, compact separators, keys in the order `event_id`, `customer_id`, `event_name`, "
      "`timestamp`, `quantity` (when present), `properties`. Event ids are `evt_` + 20 hex characters, unique "
      "across all files. Every clean event lies in October 2026 UTC, `[2026-10-01T00:00Z, 2026-11-01T00:00Z)`. "
      "Lines are roughly in time order: each event is placed by its instant plus a delivery lag "
      "(95 % < 5 s, 4 % < 10 min, 1 % are 1 h – 3 days late, like a backfilled batch).")
    w("")
    w("| event_name | events | quantity | properties | quantity omitted | Σ quantity |")
    w("| --- | ---: | --- | --- | ---: | ---: |")
    desc = {
        "api_call": ("1 or omitted", "`endpoint`, `region` (us/eu/ap)"),
        "llm_tokens": ("token count", "`model` (gpt-small/gpt-large/embed), `region`"),
        "gpu_heartbeat": ("omitted", "`job_id`, `gpu` (a100/h100/l4); one every 30 s while a job runs"),
        "storage_report": ("omitted", "`gb`, a JSON number with up to 2 decimals (e.g. `12.75`)"),
        "login": ("omitted", "`user_id`"),
    }
    for name in ["api_call", "llm_tokens", "gpu_heartbeat", "storage_report", "login"]:
        r = names[name]
        w(f"| `{name}` | {r['events']:,} | {desc[name][0]} | {desc[name][1]} | {r['quantity_omitted']:,} | "
          f"{r['quantity_sum'] if r['quantity_omitted'] < r['events'] else '—'} |")
    w(f"| **total** | **{len(clean):,}** | | | | |")
    w("")
    w(f"- GPU: {stats['gpu_jobs']} jobs from {stats['gpu_customers']} customers; a job's heartbeats share one "
      "`job_id`, exactly 30 s apart. Jobs may overlap, and a job still running at the end of the month stops at "
      "`2026-11-01T00:00Z`.")
    w(f"- Logins: {stats['distinct_users']} distinct `user_id` values across all customers; a user belongs to "
      "one customer.")
    w(f"- Storage: {stats['storage_3']} customers report 3 times a day (≈00:05, 08:05, 16:05 UTC), the others "
      "once a day (≈00:05 UTC); those timestamps are whole seconds.")
    w("")
    w("Timestamp formats among the clean events (all are valid per the event contract):")
    w("")
    w("| format | example | events |")
    w("| --- | --- | ---: |")
    tf = stats["ts_formats"]
    w(f"| RFC 3339 UTC `Z`, milliseconds or whole seconds | `2026-10-05T13:45:12.345Z` | {tf['z_ms']:,} |")
    w(f"| RFC 3339 UTC `Z`, microseconds | `2026-10-05T13:45:12.345678Z` | {tf['z_us']:,} |")
    w(f"| RFC 3339 with the customer's local offset | `2026-10-05T15:45:12.345+02:00` | {tf['offset']:,} |")
    w(f"| epoch milliseconds (JSON number) | `1791207912345` | {tf['epoch_ms']:,} |")
    w("")
    w("Offsets are the customer's real UTC offset at that instant, including the DST changes inside October "
      "(Europe: +02:00 → +01:00 and London +01:00 → +00:00 at 2026-10-25T01:00Z; Sydney +10:00 → +11:00 at "
      "2026-10-03T16:00Z), `+05:30` for Kolkata, and `+00:00` for UTC customers. Near the month's edges offsets "
      "are more frequent on purpose: "
      f"{stats['offset_local_outside']} offset timestamps show a local date outside October although the instant "
      f"is inside it (e.g. `{stats['outside_example'][0]}` is {stats['outside_example'][1]}). Note that a customer's own "
      "billing month is in its time zone, so e.g. a New York customer's October starts at 2026-10-01T04:00Z; the "
      "data set covers the UTC month only.")
    w("")
    w(f"- `quantity` as a numeric string (valid per the contract, e.g. `\"quantity\":\"1834\"`): "
      f"{stats['qty_string']} `llm_tokens` events, lines {line_ranges(stats['qty_string_lines'])}.")
    w("- `properties` is always a JSON object; `gb` values are exact decimals written without exponent or "
      "trailing zeros (`12.5`, `120`).")
    w("")
    w("## `" + PARQUET_FILE + "`")
    w("")
    w("| column | type | notes |")
    w("| --- | --- | --- |")
    w("| `event_id` | string | |")
    w("| `customer_id` | string | |")
    w("| `event_name` | string | |")
    w("| `timestamp` | timestamp[us, tz=UTC] | the same instant as the JSONL timestamp, whatever its format |")
    w("| `quantity` | decimal128(38, 18), nullable | NULL where the JSONL line has no quantity; numeric strings "
      "become their number |")
    w("| `properties` | string, nullable | the JSON object text exactly as in the JSONL line (same keys, same "
      "order, same number text) |")
    w("")
    w("Rows are in the order of the events' first line in the JSONL file. zstd-compressed, one row group.")
    w("")
    w("## Customers (`" + CUSTOMERS_FILE + "`)")
    w("")
    plans = Counter(c.subscriptions[-1][0].split("_")[0] for c in customers)
    cur = Counter(c.currency for c in customers)
    w("50 customers `cus_000001` … `cus_000050`. Current plans: " +
      ", ".join(f"{plans[p]} {p}" for p in ["starter", "pro", "scale"]) + ". Currencies: " +
      ", ".join(f"{v} {k}" for k, v in sorted(cur.items())) + ". Billing: " +
      f"{sum(c.billing == 'anniversary' for c in customers)} anniversary, the rest calendar. "
      "Subscriptions are half-open `[start, end)`.")
    w("")
    w("Usage is Zipf-like: a few big customers and a long tail. The five biggest by events: " +
      ", ".join(f"{c.id} {c.name} ({counts_by_cust[c.id]:,})" for c in biggest) + ".")
    w("")
    w("Customers worth a look:")
    w("")
    w(f"- **{PLAN_CHANGE_CUSTOMER}** changes plan mid-period: `starter` until 2026-10-14, `pro` from 2026-10-15; "
      "its usage roughly doubles after the upgrade.")
    w(f"- **{NEW_CUSTOMER}** is new: its subscription starts 2026-10-20 and its events start at local midnight "
      "of that day.")
    w(f"- **{IDLE_CUSTOMER}** is subscribed but sends no events at all in October (recurring fees only).")
    for cid, d in ANNIVERSARY.items():
        w(f"- **{cid}** bills on its anniversary, anchored on {d.isoformat()}" +
          (f" (day {d.day}: clamped to the last day in shorter months)" if d.day >= 29 else "") + ".")
    old = [c for c in customers if len(c.subscriptions) > 1 and c.id != PLAN_CHANGE_CUSTOMER]
    if old:
        w("- " + ", ".join(f"**{c.id}**" for c in old) + " moved from `pro` to `scale` before October; the old "
          "subscription is closed with an `end` date.")
    w("")
    w("## `" + CLOUDEVENTS_FILE + "`")
    w("")
    w(f"{ce_info['records']} CloudEvents 1.0 records (structured mode, one JSON object per line): `specversion`, "
      "`id` (a UUID), `source`, `type` (= event name), `subject` (= customer id), `time`, `datacontenttype`, and "
      "`data: {\"quantity\": …, \"properties\": {…}}` (`quantity` left out where the event has none). Same "
      "customers, October 2026 UTC, sorted by time, no dirty records. By type: " +
      ", ".join(f"{k} {v}" for k, v in ce_info["by_type"].items()) + ". Sources: " +
      ", ".join(f"`{s}`" for s in ce_info["sources"]) + ".")
    w("")
    w(f"The key of a CloudEvent is (`source`, `id`): lines {ce_info['shared_id_lines'][0]} and "
      f"{ce_info['shared_id_lines'][1]} share the id `{ce_info['shared_id']}` but come from different sources, "
      f"so they are two different events. **Expected outcome into an empty store: {ce_info['records']} lines read, "
      f"{ce_info['records']} accepted, 0 duplicates, 0 conflicts, 0 dead-lettered.** These events are not in the "
      "JSONL/Parquet files; ingesting both adds their usage together.")
    w("")
    return "\n".join(L)


def generate(out: Path, seed: int) -> dict:
    rng = random.Random(seed)
    customers = make_customers(rng)
    g = Gen(seed + 1)
    clean = clean_events(g, customers)
    placed = build_stream(g, clean, customers)
    ce_lines, ce_info = cloudevents(random.Random(seed + 2), customers)

    out.mkdir(parents=True, exist_ok=True)
    (out / EVENTS_FILE).write_text("".join(p.text + "\n" for p in placed), encoding="utf-8", newline="\n")
    write_parquet(out / PARQUET_FILE, clean)
    (out / CLOUDEVENTS_FILE).write_text("".join(x + "\n" for x in ce_lines), encoding="utf-8", newline="\n")
    (out / CUSTOMERS_FILE).write_text(customers_yaml(customers, seed), encoding="utf-8", newline="\n")
    (out / GRANTS_FILE).write_text(GRANTS_YAML, encoding="utf-8", newline="\n")

    expected = summarize(clean, placed)
    first_line = {p.original: p.line_no for p in placed if p.kind == "clean"}
    line_of = {p.event_id: p.line_no for p in placed if p.kind == "clean"}
    dirty = []
    for p in placed:
        if p.kind in ("clean",):
            continue
        row = {"line": p.line_no, "kind": p.kind}
        if p.event_id:
            row["event_id"] = p.event_id
        if p.original is not None:
            row["original_line"] = first_line[p.original]
        if p.note:
            row["note"] = p.note
        dirty.append(row)
    ts_formats = Counter()
    offset_outside = 0
    outside_example = None
    for e in clean:
        if e.ts_kind == "z":
            ts_formats["z_us" if e.t_us % 1000 else "z_ms"] += 1
        else:
            ts_formats[e.ts_kind] += 1
        if e.ts_kind == "offset" and not json.loads(e.ts_json).startswith("2026-10-"):
            offset_outside += 1
            if outside_example is None:
                outside_example = (json.loads(e.ts_json), iso_text(e.t_us, None))
    qty_string = [e for e in clean if e.qty_json and e.qty_json.startswith('"')]
    gpu = [e for e in clean if e.event_name == "gpu_heartbeat"]
    stats = {
        "ts_formats": {k: ts_formats[k] for k in ["z_ms", "z_us", "offset", "epoch_ms"]},
        "offset_local_outside": offset_outside,
        "outside_example": outside_example,
        "qty_string": len(qty_string),
        "qty_string_lines": sorted(line_of[e.event_id] for e in qty_string),
        "gpu_jobs": len({e.props[0][1] for e in gpu}),
        "gpu_customers": len({e.customer_id for e in gpu}),
        "distinct_users": len({e.props[0][1] for e in clean if e.event_name == "login"}),
        "storage_3": sum(1 for c in customers if c.id != IDLE_CUSTOMER and c.storage_per_day == 3),
    }
    doc = {
        "generator": "sample_data/generate.py",
        "seed": seed,
        "file": EVENTS_FILE,
        "expected": expected,
        "by_event_name": by_event_name(clean),
        "timestamp_formats": stats["ts_formats"],
        "quantity_as_string_lines": stats["qty_string_lines"],
        "dirty_lines": dirty,
        "cloudevents": {"file": CLOUDEVENTS_FILE, **ce_info, "expected": {
            "lines_read": ce_info["records"], "accepted": ce_info["records"], "identical_duplicates": 0,
            "conflicts": 0, "dead_lettered": 0}},
        "per_customer_note": "clean events of the UTC month; quantity_sum over events that have a quantity",
        "per_customer": per_customer(clean),
    }
    (out / EXPECTED_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8", newline="\n")
    sizes = {f: (out / f).stat().st_size for f in [EVENTS_FILE, PARQUET_FILE, EXPECTED_FILE, CLOUDEVENTS_FILE,
                                                     CUSTOMERS_FILE, GRANTS_FILE]}
    (out / README_FILE).write_text(readme(seed, expected, placed, clean, customers, ce_info, sizes, stats),
                                   encoding="utf-8", newline="\n")
    sizes[README_FILE] = (out / README_FILE).stat().st_size
    return {"expected": expected, "sizes": sizes, "cloudevents": ce_info["records"]}


# --------------------------------------------------------------------------------------------
# --check: an independent re-read of what was written

def parse_ts(v) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
        v = Decimal(v)
        return int(v * 1000) if v > 100_000_000_000 else int(v * US)
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return to_us(dt)
    return None


def check(out: Path) -> None:
    doc = json.loads((out / EXPECTED_FILE).read_text(encoding="utf-8"))
    exp = doc["expected"]
    upper = to_us(datetime(2026, 11, 23, tzinfo=timezone.utc))
    seen: dict[str, str] = {}
    order: list[str] = []
    parsed: dict[str, dict] = {}
    counts = Counter()
    with localcontext() as ctx:
        ctx.prec = 60
        for raw in (out / EVENTS_FILE).read_text(encoding="utf-8").split("\n")[:-1]:
            if not raw.strip():
                continue
            counts["lines_read"] += 1
            try:
                rec = json.loads(raw, parse_float=Decimal, parse_int=Decimal, object_pairs_hook=list)
            except ValueError:
                counts["dead_lettered"] += 1
                continue
            if not isinstance(rec, list) or (rec and not isinstance(rec[0], tuple)):
                counts["dead_lettered"] += 1
                continue
            d = dict(rec)
            ok = all(isinstance(d.get(k), str) and d[k] for k in ("event_id", "customer_id", "event_name"))
            t = parse_ts(d.get("timestamp"))
            ok = ok and t is not None and t < upper
            q = d.get("quantity")
            if isinstance(q, str):
                try:
                    q = Decimal(q)
                    ok = ok and q.is_finite()
                except ArithmeticError:
                    ok = False
            ok = ok and (q is None or isinstance(q, Decimal))
            if not ok:
                counts["dead_lettered"] += 1
                continue
            key = d["event_id"]
            payload = json.dumps([d["customer_id"], d["event_name"], t, str(q), str(d.get("properties"))])
            if key in seen:
                counts["identical_duplicates" if seen[key] == payload else "conflicts"] += 1
                continue
            seen[key] = payload
            order.append(key)
            counts["accepted"] += 1
            props_text = raw[raw.index('"properties":') + len('"properties":'):-1] if '"properties":' in raw else None
            parsed[key] = {"customer_id": d["customer_id"], "event_name": d["event_name"], "t": t, "q": q,
                           "props": props_text}
        for k in ("lines_read", "accepted", "identical_duplicates", "conflicts", "dead_lettered"):
            assert counts[k] == exp[k], (k, counts[k], exp[k])

        table = pq.read_table(out / PARQUET_FILE)
        assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
        assert str(table.schema.field("quantity").type) == "decimal128(38, 18)"
        rows = table.to_pydict()
        assert rows["event_id"] == order, "Parquet rows differ from the accepted JSONL events"
        ts_us = table.column("timestamp").cast(pa.int64()).to_pylist()
        for i, eid in enumerate(rows["event_id"]):
            p = parsed[eid]
            assert rows["customer_id"][i] == p["customer_id"] and rows["event_name"][i] == p["event_name"], eid
            assert ts_us[i] == p["t"] and MONTH_START <= p["t"] < MONTH_END, eid
            pq_q = rows["quantity"][i]
            assert (pq_q is None and p["q"] is None) or (pq_q is not None and p["q"] is not None and pq_q == p["q"]), eid
            assert rows["properties"][i] == p["props"], eid
        for line in (out / CLOUDEVENTS_FILE).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            assert r["specversion"] == "1.0" and r["subject"].startswith("cus_")
            assert MONTH_START <= parse_ts(r["time"]) < MONTH_END
        keys = [(r["source"], r["id"]) for r in map(json.loads, (out / CLOUDEVENTS_FILE).read_text().splitlines())]
        assert len(set(keys)) == len(keys) == doc["cloudevents"]["records"]
    print(f"check ok: {dict(counts)}; parquet matches {len(order):,} accepted events; "
          f"{len(keys)} CloudEvents with unique (source, id)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--check", action="store_true", help="re-read the written files and verify them")
    args = parser.parse_args()
    res = generate(args.out, args.seed)
    e = res["expected"]
    print(f"seed {args.seed} -> {args.out}")
    for f, s in res["sizes"].items():
        print(f"  {f:32s} {s:>12,} bytes")
    print(f"{EVENTS_FILE}: lines read {e['lines_read']:,} (physical {e['physical_lines']:,}, "
          f"blank {e['blank_lines']}) = accepted {e['accepted']:,} + identical duplicates "
          f"{e['identical_duplicates']:,} + conflicts {e['conflicts']} + dead-lettered {e['dead_lettered']} "
          f"{e['dead_lettered_by_kind']}")
    print(f"{CLOUDEVENTS_FILE}: {res['cloudevents']} records, all valid")
    if args.check:
        check(args.out)


if __name__ == "__main__":
    main()
