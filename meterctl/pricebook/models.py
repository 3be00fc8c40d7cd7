"""Pricebook files as exact, validated models: fees, charges, tiers and their rules.

Every number is read from the YAML text as a Decimal (config_yaml never makes a float); a
quoted price is refused rather than guessed at. The rules that relate a charge's fields to
one another (the price fields each model needs, minimum below maximum) are checked here,
field by field, so one bad value does not hide the charge's other problems.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal, localcontext
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from meterctl import pricing
from meterctl.cycles import Cycle

# Plan names and feature keys: what a gateway, a file name and a Redis field take as they are.
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
# DECIMAL(38, 18) holds 20 digits before the point; a price or fee far below that limit
# leaves room for quantity × price.
MAX_AMOUNT = Decimal(10) ** 15


def _exact_number(value: Any) -> Any:
    # YAML numbers arrive as int or Decimal (config_yaml never makes a float, and refuses
    # more than DECIMAL(38, 18)'s 18 places); a quoted "0.0004" is text and is refused
    # rather than guessed at.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("must be a number (write it unquoted, e.g. 0.0004)")
    number = Decimal(value)
    if abs(number) >= MAX_AMOUNT:
        raise ValueError(f"must be below {MAX_AMOUNT:,f}")
    return number


# In the JSON Schema, what a pricebook file holds: an unquoted number (a quoted one is refused).
_NUMBER_SCHEMA = {"type": "number", "exclusiveMaximum": int(MAX_AMOUNT), "exclusiveMinimum": -int(MAX_AMOUNT)}
Number = Annotated[Decimal, BeforeValidator(_exact_number), WithJsonSchema(_NUMBER_SCHEMA)]
Amount = Annotated[Decimal, BeforeValidator(_exact_number), Field(ge=0), WithJsonSchema({**_NUMBER_SCHEMA, "minimum": 0})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierModel(_Strict):
    up_to: Amount | None = Field(...)  # required: the last tier says `up_to: null` explicitly
    unit_price: Amount
    flat_fee: Amount = Decimal(0)  # read by the pricing functions as it is (see pricing.TierLike)


def _check_tiers(tiers: tuple[TierModel, ...]) -> tuple[TierModel, ...]:
    pricing.check_tiers(tiers)
    return tiers


Tiers = Annotated[tuple[TierModel, ...], AfterValidator(_check_tiers)]


class Fee(_Strict):
    name: StrictStr = Field(min_length=1)
    amount: Amount


class DimensionPrice(_Strict):
    """The price of one dimension value, overriding the charge's own."""

    unit_price: Amount | None = None
    tiers: Tiers | None = None
    package_price: Amount | None = None


Model = Literal["per_unit", "graduated", "volume", "package"]
# The price fields each model uses; any other is an error, not silently ignored.
_FIELDS: dict[str, tuple[str, ...]] = {
    "per_unit": ("unit_price",),
    "graduated": ("tiers",),
    "volume": ("tiers",),
    "package": ("package_size", "package_price"),
}
_SHORTHAND = {"per_unit": "unit_price", "package": "package_price"}


class Charge(_Strict):
    meter: StrictStr = Field(min_length=1)
    name: StrictStr | None = None
    model: Model
    unit_price: Amount | None = None
    tiers: Tiers | None = None
    package_size: Amount | None = None
    package_price: Amount | None = None
    round: Literal["up", "down"] = "up"
    free_units: Amount = Decimal(0)
    # The allowance is per window of the customer's time zone: billable = Σ max(0, window
    # usage − free units). `period` (the default) is one allowance for the whole segment.
    free_units_per: Literal["day", "week", "month", "period"] = "period"
    price_by: dict[StrictStr, dict[StrictStr, DimensionPrice]] | None = None
    minimum: Amount | None = None
    maximum: Amount | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `price_by: {model: {gpt-large: 0.000006}}`: a bare number is the model's price.
        if not isinstance(data, dict) or not isinstance(data.get("price_by"), dict):
            return data
        model = data.get("model")
        field = _SHORTHAND.get(model) if isinstance(model, str) else None
        price_by = {}
        for key, values in data["price_by"].items():
            if isinstance(values, dict) and field:
                values = {v: ({field: p} if isinstance(p, (int, Decimal)) and not isinstance(p, bool) else p)
                          for v, p in values.items()}
            price_by[key] = values
        return {**data, "price_by": price_by}

    # Checks of one field against the fields before it (`model`, `minimum`) are field
    # validators: pydantic runs them even when another field of the charge fails, so a typo
    # in one price does not hide a second problem. (A model validator runs only on a charge
    # whose every field is valid.)
    @field_validator("unit_price", "tiers", "package_size", "package_price")
    @classmethod
    def _applies(cls, value: Any, info: ValidationInfo) -> Any:
        model = info.data.get("model")
        if value is not None and model in _FIELDS and info.field_name not in _FIELDS[model]:
            raise ValueError(f"'{info.field_name}' does not apply to model '{model}' (it uses {', '.join(_FIELDS[model])})")
        return value

    @field_validator("package_size")
    @classmethod
    def _positive_size(cls, size: Decimal | None) -> Decimal | None:
        if size is not None and size <= 0:
            raise ValueError("package_size must be above zero")
        return size

    @field_validator("round")
    @classmethod
    def _package_only(cls, value: str, info: ValidationInfo) -> str:
        model = info.data.get("model")
        if model in _FIELDS and model != "package":
            raise ValueError("'round' only applies to model 'package'")
        return value

    @field_validator("maximum")
    @classmethod
    def _above_minimum(cls, maximum: Decimal | None, info: ValidationInfo) -> Decimal | None:
        minimum = info.data.get("minimum")
        if maximum is not None and minimum is not None and minimum > maximum:
            raise ValueError(f"minimum {minimum} is above maximum {maximum}")
        return maximum

    @model_validator(mode="after")
    def _consistent(self) -> Charge:
        problems = [f"model '{self.model}' needs '{name}'" for name in _FIELDS[self.model] if getattr(self, name) is None]
        if self.price_by is not None:
            if len(self.price_by) != 1:
                problems.append("price_by prices by one dimension, e.g. {model: {gpt-large: 0.000006}}")
            for key, values in self.price_by.items():
                if not values:
                    problems.append(f"price_by.{key} lists no values")
                problems.extend(filter(None, (self._dimension_price_problem(f"price_by.{key}.{value}", price)
                                              for value, price in values.items())))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _dimension_price_problem(self, where: str, price: DimensionPrice) -> str | None:
        given = {f for f in ("unit_price", "tiers", "package_price") if getattr(price, f) is not None}
        allowed = {"per_unit": {"unit_price"}, "graduated": {"tiers"}, "volume": {"tiers"}, "package": {"package_price"}}[self.model]
        if not given:
            return f"{where}: gives no price"
        if given - allowed:
            return f"{where}: {', '.join(sorted(given - allowed))} does not apply to model '{self.model}'"
        return None

    @property
    def dimension(self) -> str | None:
        """The dimension this charge prices by, if any."""
        return next(iter(self.price_by)) if self.price_by else None

    @property
    def label(self) -> str:
        return self.name or self.meter

    @property
    def per_window(self) -> bool:
        """Its free units are an allowance per day, week or month, taken off before pricing."""
        return bool(self.free_units) and self.free_units_per != "period"

    def price(self, quantity: Decimal, dimension_value: str | None = None,
              allowance_taken: bool = False) -> pricing.Price:
        """Price `quantity` of this charge (for one value of its price_by dimension); with
        `allowance_taken`, the free units were taken off already (per window)."""
        override = None
        if self.price_by is not None and dimension_value is not None:
            override = self.price_by[self.dimension].get(dimension_value)  # type: ignore[index]
        model = self.model
        billable = quantity
        free_units = Decimal(0) if allowance_taken else self.free_units
        # (NaN and infinities go on to the model, which refuses them by name.)
        if model != "package" and free_units and quantity.is_finite() and quantity > 0:
            billable = pricing.after_free_units(quantity, free_units)
        if model == "per_unit":
            chosen = override.unit_price if override is not None else None
            return pricing.per_unit(billable, self.unit_price if chosen is None else chosen)  # type: ignore[arg-type]
        if model in ("graduated", "volume"):
            # The tiers as loaded: the pricing functions read up_to, unit_price and flat_fee.
            tiers = override.tiers if override is not None else self.tiers  # an override of these models has tiers
            return (pricing.graduated if model == "graduated" else pricing.volume)(billable, tiers)  # type: ignore[arg-type]
        chosen = override.package_price if override is not None else None
        return pricing.package(quantity, size=self.package_size, price=self.package_price if chosen is None else chosen,  # type: ignore[arg-type]
                               round=self.round, free_units=free_units)


class CreditExpiry(_Strict):
    """An expiry some time after the credit takes effect: {days: N} or {months: N}."""

    days: int | None = Field(default=None, strict=True, ge=1)
    months: int | None = Field(default=None, strict=True, ge=1)

    @model_validator(mode="after")
    def _one(self) -> CreditExpiry:
        if (self.days is None) == (self.months is None):
            raise ValueError("give days or months (one of them)")
        return self


class PlanCredit(_Strict):
    """Credits the plan grants each customer on it: every billing period, or once."""

    name: StrictStr = Field(min_length=1)
    amount: Amount | None = None  # money, in the plan's currency
    credits: Amount | None = None  # or credits × rate (money per credit)
    rate: Amount | None = None
    every: Literal["period", "once"] = "period"
    expires: Literal["period_end", "never"] | CreditExpiry = "period_end"
    priority: int | None = Field(default=None, strict=True, ge=0)
    applies_to: tuple[StrictStr, ...] = ("usage",)

    @model_validator(mode="after")
    def _value(self) -> PlanCredit:
        if self.amount is not None:
            if self.credits is not None or self.rate is not None:
                raise ValueError("give amount, or credits with rate, not both")
            if self.amount <= 0:
                raise ValueError("amount must be more than zero")
        elif self.credits is None or self.rate is None:
            raise ValueError("give amount, or credits with rate (money per credit)")
        elif self.credits <= 0 or self.rate <= 0:
            raise ValueError("credits and rate must be more than zero")
        scopes = {"usage", "all"} & set(self.applies_to)
        if not self.applies_to or (scopes and len(self.applies_to) > 1):
            raise ValueError("applies_to is [usage], [all], or meters")
        return self

    @property
    def value(self) -> Decimal:
        """The money granted each time."""
        if self.amount is not None:
            return self.amount
        with localcontext() as exact:
            exact.prec = 80
            return self.credits * self.rate  # type: ignore[operator]


Reset = Literal["day", "week", "month", "period", "never"]


class Feature(_Strict):
    """What a plan entitles its customers to: a boolean feature ({key}), a static value
    ({key, value}), or metered usage with a limit per reset window ({key, meter, limit,
    reset, soft}; limit null: unlimited)."""

    key: StrictStr
    value: StrictStr | bool | int | Number | None = None
    meter: StrictStr | None = None
    limit: Amount | None = None
    reset: Reset = "period"
    soft: bool = Field(default=False, strict=True)
    alerts: tuple[Number, ...] = ()

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        if not _NAME.match(key):
            raise ValueError("must be lower case letters, digits, _ and - (starting with a letter)")
        return key

    @field_validator("alerts")
    @classmethod
    def _alerts(cls, alerts: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if any(not 0 < alert <= 10 for alert in alerts) or list(alerts) != sorted(set(alerts)):
            raise ValueError("must be ascending fractions of the limit, such as [0.8, 1.0]")
        return alerts

    @model_validator(mode="after")
    def _kind(self) -> Feature:
        metered_only = {"limit", "reset", "soft", "alerts"} & self.model_fields_set
        if self.meter is None and metered_only:
            raise ValueError(f"{', '.join(sorted(metered_only))} belong to a metered feature: give its meter too")
        if self.meter is not None and self.value is not None:
            raise ValueError("a feature has a value (static) or a meter (metered), not both")
        return self

    @property
    def kind(self) -> str:
        return "metered" if self.meter is not None else "static" if self.value is not None else "boolean"


class Pricebook(_Strict):
    plan: StrictStr
    version: int = Field(strict=True, ge=1)
    effective_from: date
    currency: StrictStr
    rounding: pricing.Rounding = "half_up"
    billing_cycle: Cycle = Cycle.MONTHLY
    description: StrictStr | None = None
    fees: tuple[Fee, ...] = ()
    charges: tuple[Charge, ...] = ()
    credits: tuple[PlanCredit, ...] = ()
    features: tuple[Feature, ...] = ()

    @field_validator("plan")
    @classmethod
    def _plan(cls, plan: str) -> str:
        if not _NAME.match(plan):
            raise ValueError("must be lower case letters, digits, _ and - (starting with a letter)")
        return plan

    @field_validator("currency")
    @classmethod
    def _currency(cls, currency: str) -> str:
        pricing.minor_units(currency)  # ValueError for anything that is not an ISO 4217 code with minor units
        return currency

    @property
    def minor_units(self) -> int:
        return pricing.minor_units(self.currency)

    def content(self) -> dict:
        """Every field, defaults included, as JSON-ready data (decimals as plain text)."""
        return json.loads(json.dumps(self.model_dump(mode="python"), default=_json_value))

    def canonical(self) -> str:
        """The content as canonical JSON: what the hash covers and what the store keeps."""
        # Defaults left out: a key added to the format later (with a default) does not make
        # every frozen version look edited.
        return json.dumps(self.model_dump(mode="python", exclude_defaults=True), default=_json_value,
                          sort_keys=True, separators=(",", ":"))


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return pricing.text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


