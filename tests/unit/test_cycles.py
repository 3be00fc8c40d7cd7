"""Billing periods: calendar and anniversary cycles, month-end clamping, DST, plan changes."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterctl.cycles import (
    Alignment,
    Cycle,
    Period,
    Segment,
    Subscription,
    billing_periods,
    parse_period_month,
    period_containing,
    periods_for_customer,
    segments,
)
from meterctl.errors import ConfigError

NY = "America/New_York"


def starts(periods) -> list[date]:
    return [p.start for p in periods]


def spans(periods) -> list[tuple[date, date]]:
    return [(p.start, p.end) for p in periods]


def monthly_anniversary(anchor: date, start: date, end: date, tz: str = "UTC") -> tuple[Period, ...]:
    return billing_periods(cycle=Cycle.MONTHLY, alignment=Alignment.ANNIVERSARY, anchor=anchor, tz=tz, start=start, end=end)


# ---------------------------------------------------------------- month-end clamping


def test_a_jan_31_anchor_clamps_to_feb_29_in_a_leap_year_and_comes_back_to_31():
    periods = monthly_anniversary(date(2028, 1, 31), date(2028, 1, 1), date(2029, 2, 1))
    assert starts(periods) == [
        date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30),
        date(2028, 5, 31), date(2028, 6, 30), date(2028, 7, 31), date(2028, 8, 31),
        date(2028, 9, 30), date(2028, 10, 31), date(2028, 11, 30), date(2028, 12, 31),
        date(2029, 1, 31),
    ]
    assert [p.days for p in periods[:4]] == [29, 31, 30, 31]
    assert periods[-1].end == date(2029, 2, 28)


def test_a_jan_31_anchor_clamps_to_feb_28_in_a_common_year():
    periods = monthly_anniversary(date(2027, 1, 31), date(2027, 1, 1), date(2027, 5, 1))
    assert spans(periods) == [
        (date(2027, 1, 31), date(2027, 2, 28)),
        (date(2027, 2, 28), date(2027, 3, 31)),
        (date(2027, 3, 31), date(2027, 4, 30)),
        (date(2027, 4, 30), date(2027, 5, 31)),
    ]


def test_a_jan_30_anchor_clamps_only_in_february():
    periods = monthly_anniversary(date(2027, 1, 30), date(2027, 1, 30), date(2027, 4, 1))
    assert starts(periods) == [date(2027, 1, 30), date(2027, 2, 28), date(2027, 3, 30)]


def test_a_feb_29_yearly_anniversary_falls_on_feb_28_until_the_next_leap_year():
    periods = billing_periods(
        cycle="yearly", alignment="anniversary", anchor=date(2028, 2, 29), tz="UTC",
        start=date(2028, 1, 1), end=date(2032, 12, 31),
    )
    assert starts(periods) == [date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28), date(2031, 2, 28), date(2032, 2, 29)]
    assert [p.days for p in periods] == [365, 365, 365, 366, 365]  # 2031-02-28 → 2032-02-29 holds the leap day


# ---------------------------------------------------------------- quarterly and yearly


def test_quarterly_anniversary_clamps_each_quarter_from_the_anchor():
    periods = billing_periods(
        cycle=Cycle.QUARTERLY, alignment=Alignment.ANNIVERSARY, anchor=date(2027, 8, 31), tz="UTC",
        start=date(2027, 8, 31), end=date(2028, 9, 1),
    )
    assert starts(periods) == [date(2027, 8, 31), date(2027, 11, 30), date(2028, 2, 29), date(2028, 5, 31), date(2028, 8, 31)]


def test_quarterly_calendar_periods_start_on_quarter_days_after_a_partial_first_quarter():
    periods = billing_periods(
        cycle=Cycle.QUARTERLY, alignment=Alignment.CALENDAR, anchor=date(2026, 2, 14), tz=NY,
        start=date(2026, 1, 1), end=date(2027, 1, 1),
    )
    assert spans(periods) == [
        (date(2026, 2, 14), date(2026, 4, 1)),   # partial: from the subscription start
        (date(2026, 4, 1), date(2026, 7, 1)),
        (date(2026, 7, 1), date(2026, 10, 1)),
        (date(2026, 10, 1), date(2027, 1, 1)),
    ]


def test_yearly_calendar_periods_start_on_january_first():
    periods = billing_periods(
        cycle=Cycle.YEARLY, alignment=Alignment.CALENDAR, anchor=date(2026, 9, 14), tz=NY,
        start=date(2026, 1, 1), end=date(2028, 6, 1),
    )
    assert spans(periods) == [
        (date(2026, 9, 14), date(2027, 1, 1)),
        (date(2027, 1, 1), date(2028, 1, 1)),
        (date(2028, 1, 1), date(2029, 1, 1)),
    ]


def test_yearly_anniversary_periods_repeat_the_subscription_day():
    periods = billing_periods(
        cycle=Cycle.YEARLY, alignment=Alignment.ANNIVERSARY, anchor=date(2026, 9, 14), tz=NY,
        start=date(2027, 1, 1), end=date(2028, 1, 1),
    )
    assert spans(periods) == [(date(2026, 9, 14), date(2027, 9, 14)), (date(2027, 9, 14), date(2028, 9, 14))]


def test_a_calendar_subscription_starting_on_the_first_has_a_full_first_period():
    periods = billing_periods(
        cycle="monthly", alignment="calendar", anchor=date(2026, 10, 1), tz=NY,
        start=date(2026, 10, 1), end=date(2026, 12, 1),
    )
    assert spans(periods) == [(date(2026, 10, 1), date(2026, 11, 1)), (date(2026, 11, 1), date(2026, 12, 1))]


# ---------------------------------------------------------------- ranges, half-open edges


def test_periods_overlapping_the_range_are_returned_whole():
    periods = billing_periods(
        cycle="monthly", alignment="calendar", anchor=date(2026, 1, 1), tz=NY,
        start=date(2026, 10, 10), end=date(2026, 10, 11),
    )
    assert spans(periods) == [(date(2026, 10, 1), date(2026, 11, 1))]


def test_range_edges_are_half_open():
    common = dict(cycle="monthly", alignment="calendar", anchor=date(2026, 1, 1), tz=NY)
    # Ends exactly where November begins: November is not in it.
    assert spans(billing_periods(**common, start=date(2026, 10, 1), end=date(2026, 11, 1))) == [
        (date(2026, 10, 1), date(2026, 11, 1))
    ]
    # Starts exactly where October ends: October is not in it.
    assert starts(billing_periods(**common, start=date(2026, 11, 1), end=date(2026, 11, 2))) == [date(2026, 11, 1)]


def test_no_period_starts_before_the_anchor():
    common = dict(cycle="monthly", alignment="anniversary", anchor=date(2026, 9, 14), tz=NY)
    assert billing_periods(**common, start=date(2026, 1, 1), end=date(2026, 9, 14)) == ()
    assert starts(billing_periods(**common, start=date(2026, 1, 1), end=date(2026, 9, 15))) == [date(2026, 9, 14)]


def test_period_containing_a_day_and_an_instant():
    common = dict(cycle="monthly", alignment="anniversary", anchor=date(2027, 1, 31), tz=NY)
    assert spans([period_containing(**common, at=date(2027, 3, 30))]) == [(date(2027, 2, 28), date(2027, 3, 31))]
    # 03:30Z on March 31 is still March 30 in New York.
    at = datetime(2027, 3, 31, 3, 30, tzinfo=UTC)
    assert period_containing(**common, at=at).start == date(2027, 2, 28)
    assert period_containing(**common, at=at + timedelta(hours=1)).start == date(2027, 3, 31)
    with pytest.raises(ValueError, match="before the billing anchor 2027-01-31"):
        period_containing(**common, at=date(2027, 1, 30))


# ---------------------------------------------------------------- time zones and DST


def test_a_new_york_period_across_the_november_dst_change_is_an_hour_longer():
    october, november, december = monthly_anniversary(date(2026, 10, 15), date(2026, 10, 15), date(2026, 12, 16), tz=NY)
    assert (october.start, october.end) == (date(2026, 10, 15), date(2026, 11, 15))
    assert october.start_at == datetime(2026, 10, 15, 4, 0, tzinfo=UTC)   # EDT, UTC-4
    assert october.end_at == datetime(2026, 11, 15, 5, 0, tzinfo=UTC)     # EST, UTC-5
    assert october.days == 31
    assert october.duration == timedelta(days=31, hours=1)
    assert october.duration % timedelta(hours=24) != timedelta(0)       # not whole 24 h days
    assert december.start_at == datetime(2026, 12, 15, 5, 0, tzinfo=UTC)
    assert november.end_at == december.start_at
    assert october.contains(datetime(2026, 11, 15, 4, 59, tzinfo=UTC))
    assert not october.contains(datetime(2026, 11, 15, 5, 0, tzinfo=UTC))


def test_a_calendar_quarter_across_dst_starts_at_local_midnight():
    (q4,) = billing_periods(cycle="quarterly", alignment="calendar", anchor=date(2026, 1, 1), tz=NY,
                            start=date(2026, 11, 1), end=date(2026, 11, 2))
    assert q4.start_at == datetime(2026, 10, 1, 4, 0, tzinfo=UTC)
    assert q4.end_at == datetime(2027, 1, 1, 5, 0, tzinfo=UTC)
    assert q4.start_at.astimezone(ZoneInfo(NY)).hour == 0


def test_a_day_whose_midnight_is_skipped_starts_at_its_first_instant():
    # Santiago springs forward at midnight: 2026-09-06 begins at 01:00 local (04:00Z).
    (period,) = billing_periods(cycle="monthly", alignment="anniversary", anchor=date(2026, 8, 6), tz="America/Santiago",
                                start=date(2026, 8, 10), end=date(2026, 8, 11))
    assert period.end == date(2026, 9, 6)
    assert period.end_at == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)
    assert period.end_at.astimezone(ZoneInfo("America/Santiago")).hour == 1


# ---------------------------------------------------------------- plan changes and gaps

ACME = (Subscription("pro", date(2026, 9, 14)), Subscription("scale", date(2026, 11, 20)))


def test_a_plan_change_mid_period_makes_two_segments_whose_fractions_sum_to_one():
    result = periods_for_customer(subscriptions=ACME, cycle="monthly", alignment="calendar", tz=NY,
                                  start=date(2026, 9, 1), end=date(2027, 1, 1))
    assert [(s.period.start, s.plan, s.start, s.end) for s in result] == [
        (date(2026, 9, 14), "pro", date(2026, 9, 14), date(2026, 10, 1)),
        (date(2026, 10, 1), "pro", date(2026, 10, 1), date(2026, 11, 1)),
        (date(2026, 11, 1), "pro", date(2026, 11, 1), date(2026, 11, 20)),
        (date(2026, 11, 1), "scale", date(2026, 11, 20), date(2026, 12, 1)),
        (date(2026, 12, 1), "scale", date(2026, 12, 1), date(2027, 1, 1)),
    ]
    pro, scale = (s for s in result if s.period.start == date(2026, 11, 1))
    assert (pro.days, scale.days, pro.period.days) == (19, 11, 30)
    assert pro.fraction + scale.fraction == 1
    assert abs(pro.fraction - Decimal(19) / Decimal(30)) < Decimal("1e-20")
    assert result[0].fraction == 1   # a partial first period is a whole period of its own


def test_a_plan_change_does_not_re_anchor_anniversary_periods():
    result = periods_for_customer(subscriptions=ACME, cycle="monthly", alignment="anniversary", tz=NY,
                                  start=date(2026, 11, 1), end=date(2026, 12, 31))
    assert [(s.period.start, s.plan, s.start, s.end) for s in result] == [
        (date(2026, 10, 14), "pro", date(2026, 10, 14), date(2026, 11, 14)),
        (date(2026, 11, 14), "pro", date(2026, 11, 14), date(2026, 11, 20)),
        (date(2026, 11, 14), "scale", date(2026, 11, 20), date(2026, 12, 14)),
        (date(2026, 12, 14), "scale", date(2026, 12, 14), date(2027, 1, 14)),
    ]


def test_days_without_a_subscription_produce_no_segment():
    subs = [Subscription("pro", date(2026, 9, 1), end=date(2026, 10, 10)), Subscription("scale", date(2026, 10, 20))]
    october = Period(date(2026, 10, 1), date(2026, 11, 1), NY)
    pro, scale = segments(october, subs)
    assert (pro.plan, pro.start, pro.end) == ("pro", date(2026, 10, 1), date(2026, 10, 10))
    assert (scale.plan, scale.start, scale.end) == ("scale", date(2026, 10, 20), date(2026, 11, 1))
    assert (pro.days, scale.days) == (9, 12)
    billed = pro.fraction + scale.fraction
    assert billed < 1 and abs(billed - Decimal(21) / Decimal(31)) < Decimal("1e-19")


def test_whole_periods_without_a_subscription_are_skipped_and_billing_stops_at_the_end():
    subs = [Subscription("pro", date(2026, 1, 1), end=date(2026, 2, 1)), Subscription("pro", date(2026, 4, 1), end=date(2026, 5, 16))]
    result = periods_for_customer(subscriptions=subs, cycle="monthly", alignment="calendar", tz="UTC",
                                  start=date(2026, 1, 1), end=date(2027, 1, 1))
    assert [(s.start, s.end) for s in result] == [
        (date(2026, 1, 1), date(2026, 2, 1)),
        (date(2026, 4, 1), date(2026, 5, 1)),
        (date(2026, 5, 1), date(2026, 5, 16)),
    ]


def test_back_to_back_subscriptions_to_the_same_plan_are_one_segment():
    subs = [Subscription("pro", date(2026, 1, 1), end=date(2026, 1, 10)), Subscription("pro", date(2026, 1, 10))]
    (segment,) = segments(Period(date(2026, 1, 1), date(2026, 2, 1), "UTC"), subs)
    assert (segment.start, segment.end, segment.fraction) == (date(2026, 1, 1), date(2026, 2, 1), 1)


def test_thirds_of_a_period_still_sum_to_exactly_one():
    period = Period(date(2026, 11, 1), date(2026, 12, 1), NY)
    subs = [Subscription("a", date(2026, 1, 1)), Subscription("b", date(2026, 11, 11)), Subscription("c", date(2026, 11, 21))]
    parts = segments(period, subs)
    assert [s.days for s in parts] == [10, 10, 10]
    assert sum(s.fraction for s in parts) == 1
    assert all(abs(s.fraction - Decimal(1) / Decimal(3)) < Decimal("1e-20") for s in parts)


# ---------------------------------------------------------------- validation and parsing


def test_an_unknown_time_zone_is_a_configuration_error_that_names_it():
    with pytest.raises(ConfigError, match="Mars/Olympus") as caught:
        billing_periods(cycle="monthly", alignment="calendar", anchor=date(2026, 1, 1), tz="Mars/Olympus",
                        start=date(2026, 1, 1), end=date(2026, 2, 1))
    assert caught.value.exit_code == 78
    with pytest.raises(ConfigError, match="Europe/Pariss"):
        periods_for_customer(subscriptions=ACME, cycle="monthly", alignment="calendar", tz="Europe/Pariss",
                             start=date(2026, 1, 1), end=date(2026, 2, 1))


@pytest.mark.parametrize("start, end", [(date(2026, 2, 1), date(2026, 2, 1)), (date(2026, 3, 1), date(2026, 2, 1))])
def test_a_range_must_end_after_it_starts(start, end):
    with pytest.raises(ValueError, match="must end after it starts"):
        billing_periods(cycle="monthly", alignment="calendar", anchor=date(2026, 1, 1), tz="UTC", start=start, end=end)
    with pytest.raises(ValueError, match="must end after it starts"):
        Period(start, end, "UTC")


def test_unknown_cycles_and_overlapping_plan_starts_are_rejected():
    with pytest.raises(ValueError, match="unknown billing cycle 'weekly'"):
        billing_periods(cycle="weekly", alignment="calendar", anchor=date(2026, 1, 1), tz="UTC",
                        start=date(2026, 1, 1), end=date(2026, 2, 1))
    with pytest.raises(ValueError, match="unknown billing alignment"):
        billing_periods(cycle="monthly", alignment="fiscal", anchor=date(2026, 1, 1), tz="UTC",
                        start=date(2026, 1, 1), end=date(2026, 2, 1))
    with pytest.raises(ValueError, match="two subscriptions start on 2026-01-01"):
        segments(Period(date(2026, 1, 1), date(2026, 2, 1), "UTC"),
                 [Subscription("a", date(2026, 1, 1)), Subscription("b", date(2026, 1, 1))])
    with pytest.raises(ValueError, match="at least one subscription"):
        periods_for_customer(subscriptions=[], cycle="monthly", alignment="calendar", tz="UTC",
                             start=date(2026, 1, 1), end=date(2026, 2, 1))


def test_parse_period_month():
    assert parse_period_month("2026-10") == (date(2026, 10, 1), date(2026, 11, 1))
    assert parse_period_month("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-10", "2026/10", "2026-10-01", "", "october"])
def test_parse_period_month_rejects_bad_input_with_the_expected_shape(text):
    with pytest.raises(ValueError, match=r"invalid month .*(YYYY-MM|01 to 12)"):
        parse_period_month(text)


# ---------------------------------------------------------------- properties

CYCLES = st.sampled_from(list(Cycle))
ALIGNMENTS = st.sampled_from(list(Alignment))
ZONES = st.sampled_from(["UTC", NY, "Europe/Paris", "Asia/Kolkata", "Australia/Lord_Howe", "America/Santiago"])
DAYS = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))
LENGTH = {Cycle.MONTHLY: (28, 31), Cycle.QUARTERLY: (89, 92), Cycle.YEARLY: (365, 366)}


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


@given(cycle=CYCLES, alignment=ALIGNMENTS, tz=ZONES, anchor=DAYS, start=DAYS, length=st.integers(1, 1500))
def test_consecutive_periods_tile_the_range_without_gap_or_overlap(cycle, alignment, tz, anchor, start, length):
    end = start + timedelta(days=length)
    periods = billing_periods(cycle=cycle, alignment=alignment, anchor=anchor, tz=tz, start=start, end=end)
    if end <= anchor:
        assert periods == ()
        return
    first, last = periods[0], periods[-1]
    assert first.start <= max(start, anchor) < first.end
    assert first.start >= anchor
    assert last.start < end <= last.end
    for before, after in itertools.pairwise(periods):
        assert before.end == after.start
        assert before.end_at == after.start_at
    low, high = LENGTH[cycle]
    for period in periods:
        assert period.start_at < period.end_at
        if period.start != anchor:
            assert low <= period.days <= high
    some_day = max(start, anchor) + (end - max(start, anchor)) // 2
    assert period_containing(cycle=cycle, alignment=alignment, anchor=anchor, tz=tz, at=some_day) in periods


@given(cycle=CYCLES, anchor=DAYS, start=DAYS, length=st.integers(1, 1500))
def test_every_anniversary_period_starts_on_the_anchor_day_clamped_to_the_month(cycle, anchor, start, length):
    periods = billing_periods(cycle=cycle, alignment=Alignment.ANNIVERSARY, anchor=anchor, tz="UTC",
                              start=start, end=start + timedelta(days=length))
    for period in periods:
        month_length = calendar.monthrange(period.start.year, period.start.month)[1]
        assert period.start.day == min(anchor.day, month_length)
        assert (month_index(period.start) - month_index(anchor)) % cycle.months == 0


@given(cycle=CYCLES, anchor=DAYS, start=DAYS, length=st.integers(1, 1500))
def test_every_calendar_period_after_the_first_starts_on_a_cycle_boundary(cycle, anchor, start, length):
    periods = billing_periods(cycle=cycle, alignment=Alignment.CALENDAR, anchor=anchor, tz="UTC",
                              start=start, end=start + timedelta(days=length))
    for period in periods:
        if period.start == anchor:
            continue
        assert period.start.day == 1
        assert (period.start.month - 1) % cycle.months == 0


@given(
    cycle=CYCLES, alignment=ALIGNMENTS, anchor=DAYS, offset=st.integers(0, 2000),
    cuts=st.lists(st.floats(0, 1, exclude_max=True), max_size=6), ended=st.booleans(), data=st.data(),
)
def test_fractions_of_a_fully_subscribed_period_sum_to_exactly_one(cycle, alignment, anchor, offset, cuts, ended, data):
    period = period_containing(cycle=cycle, alignment=alignment, anchor=anchor, tz=NY, at=anchor + timedelta(days=offset))
    changes = sorted({period.start + timedelta(days=1 + int(c * (period.days - 1))) for c in cuts} - {period.start})
    changes = [d for d in changes if d < period.end]
    plans = data.draw(st.lists(st.sampled_from(["basic", "pro", "scale"]), min_size=len(changes) + 1, max_size=len(changes) + 1))
    last_end = data.draw(st.dates(min_value=period.end, max_value=period.end + timedelta(days=400))) if ended else None
    subs = [Subscription(plans[0], anchor)]
    subs += [Subscription(plan, day) for plan, day in zip(plans[1:], changes, strict=True)]
    subs[-1] = Subscription(subs[-1].plan, subs[-1].start, last_end)

    parts = segments(period, subs)

    assert sum(part.fraction for part in parts) == 1
    assert parts[0].start == period.start and parts[-1].end == period.end
    for before, after in itertools.pairwise(parts):
        assert before.end == after.start and before.plan != after.plan
    for part in parts:
        assert Decimal(0) < part.fraction <= 1
        assert abs(part.fraction - Decimal(part.days) / Decimal(period.days)) < Decimal("1e-20")
        assert isinstance(part, Segment)
