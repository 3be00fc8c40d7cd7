"""Meter definitions (`meters.yaml` in the configuration directory).

A meter selects events by `event_name` (and optional property filters) and aggregates a
value per window: count, sum, max, min, latest, count_unique (of a property), or
duration (seconds of activity from heartbeats, or start/stop events, per session).

`ignore_events` names the events that are sent but never billed (logins, health checks):
reconciliation reports them as `ignored` rather than as events no meter selects, which
would be lost revenue. No meter may select an ignored name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from meterctl.config_yaml import ConfigProblems, Document, Problem, load_document, repeats, validate

METERS_FILE = "meters.yaml"

Aggregation = Literal["count", "sum", "max", "min", "latest", "count_unique", "duration"]
Scalar = StrictStr | int | Decimal | bool

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VALUE = re.compile(r"^(quantity|properties\.[A-Za-z0-9_\-]+)$")
_PROPERTY = re.compile(r"^(properties\.)?[A-Za-z0-9_\-]+$")
_NEEDS_VALUE = {"sum", "max", "min", "latest", "count_unique"}


class Meter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    event_name: StrictStr = Field(min_length=1)
    aggregation: Aggregation
    value: StrictStr | None = None
    group_by: tuple[StrictStr, ...] = ()
    filters: dict[StrictStr, Scalar | list[Scalar]] = Field(default_factory=dict)
    # duration meters
    session: StrictStr | None = None
    heartbeat_gap_seconds: int = Field(default=300, gt=0)
    stop_event: StrictStr | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("must be lower case letters, digits and _ (starting with a letter)")
        return name

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | None) -> str | None:
        if value is not None and not _VALUE.match(value):
            raise ValueError("must be 'quantity' or 'properties.<key>'")
        return value

    @field_validator("group_by", "session")
    @classmethod
    def _properties(cls, names):
        for name in (names if isinstance(names, tuple) else (names,) if names else ()):
            if not _PROPERTY.match(name):
                raise ValueError(f"'{name}' is not a property name")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> Meter:
        if self.aggregation in _NEEDS_VALUE and self.value is None:
            raise ValueError(f"aggregation '{self.aggregation}' needs 'value' (quantity or properties.<key>)")
        if self.aggregation == "count_unique" and self.value == "quantity":
            raise ValueError("count_unique counts distinct values of a property: use value: properties.<key>")
        if self.aggregation in ("count", "duration") and self.value is not None:
            raise ValueError(f"aggregation '{self.aggregation}' takes no 'value'")
        if self.aggregation == "duration" and self.session is None:
            raise ValueError("aggregation 'duration' needs 'session' (the property that names a session)")
        if self.aggregation != "duration" and (self.session or self.stop_event):
            raise ValueError("'session' and 'stop_event' only apply to aggregation 'duration'")
        return self

    @property
    def dimension_keys(self) -> tuple[str, ...]:
        return tuple(name.removeprefix("properties.") for name in self.group_by)


def definitions_json(meters: Sequence[Meter]) -> str:
    """Meter definitions as a rating run records them: what traces its lines to events."""
    return json.dumps([m.model_dump(mode="json") for m in meters], sort_keys=True)


class MetersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    meters: tuple[Meter, ...]
    ignore_events: tuple[StrictStr, ...] = ()

    @field_validator("ignore_events")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in names):
            raise ValueError("an event name cannot be empty")
        return names


def load_meters(directory: Path) -> tuple[Meter, ...]:
    """Read and check `meters.yaml`; every problem is reported at once (exit 78)."""
    return load_meter_file(directory).meters


def load_meter_file(directory: Path) -> MetersFile:
    """`meters.yaml` whole: the meters and the event names it ignores."""
    path = directory / METERS_FILE
    if not directory.is_dir():
        raise ConfigProblems([Problem(str(directory), None, "", "configuration directory does not exist (--pricebooks DIR or METERCTL_PRICEBOOKS)")])
    if not path.exists():
        raise ConfigProblems([Problem(str(path), None, "", "no meters.yaml in the configuration directory")])
    document = load_document(path)
    parsed = validate(document, MetersFile)
    _check_names(document, parsed)
    return parsed


def _check_names(document: Document, parsed: MetersFile) -> None:
    problems = [document.problem(("meters", index, "name"), f"meter '{name}' is defined twice (first as meters[{first}])")
                for index, name, first in repeats(meter.name for meter in parsed.meters)]
    problems += [document.problem(("ignore_events", index), f"'{name}' is listed twice (first as ignore_events[{first}])")
                 for index, name, first in repeats(parsed.ignore_events)]
    selected = {name: meter.name for meter in parsed.meters for name in (meter.event_name, meter.stop_event) if name}
    problems += [document.problem(("ignore_events", index),
                                  f"'{name}' is selected by meter '{selected[name]}': an event is either metered or ignored")
                 for index, name in enumerate(parsed.ignore_events) if name in selected]
    if problems:
        raise ConfigProblems(problems)
