"""YAML for configuration: exact numbers, line numbers for every key, every problem at once.

Numbers are built from their source text (a float never appears: `0.0004` becomes
Decimal('0.0004')), duplicate keys are errors, and each value remembers the line it was
written on so that a validation error can say `file:line key: message`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from meterctl.errors import ConfigError, InputNotFoundError

PathKey = tuple[str | int, ...]
Model = TypeVar("Model", bound=BaseModel)
_EXPONENT = re.compile(r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigProblems(ConfigError):
    """One or more configuration problems, each naming file, line and key."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: plain Python data plus the line of every key path."""

    file: str
    data: Any
    lines: dict[PathKey, int]

    def line_of(self, path: Sequence[str | int]) -> int | None:
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        return Problem(self.file, self.line_of(path), format_key(path), message)


def repeats(names: Iterable[object]) -> Iterator[tuple[int, str, int]]:
    """(index, name, index of its first use) for every name used before in the list;
    entries that are not strings (their own problem, reported elsewhere) are passed over."""
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in seen:
            yield index, name, seen[name]
        else:
            seen[name] = index


def format_key(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# libyaml's parser when PyYAML was built with it (its wheels are): ten times faster than the
# pure-Python one on a customers file. Both give the same nodes and line numbers, except that
# a plain scalar's style is '' there and None here.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _build(loader: _Loader, node: yaml.Node, path: PathKey, lines: dict[PathKey, int], problems: list, file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(loader, key_node, path + ("<key>",), {}, problems, file)
            if not isinstance(key, (str, int)):
                problems.append(Problem(file, key_node.start_mark.line + 1, format_key(path), "keys must be strings"))
                continue
            key = str(key)
            if key in result:
                problems.append(Problem(file, key_node.start_mark.line + 1, format_key(path + (key,)), "duplicate key"))
                continue
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, path + (key,), lines, problems, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), lines, problems, file) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)  # the only other kind of node
    if node.tag == "tag:yaml.org,2002:str" and not node.style and _EXPONENT.match(node.value):
        # YAML 1.1 reads 2e-6 (no dot) as text; written unquoted, it is meant as a number.
        return _exact(Decimal(node.value), node, path, problems, file)
    if node.tag == "tag:yaml.org,2002:float":
        text = node.value.replace("_", "")
        if text.lower().lstrip("+-") in (".inf", ".nan"):
            problems.append(Problem(file, node.start_mark.line + 1, format_key(path), f"{node.value} is not a finite number"))
            return None
        if ":" in text:
            return _not_decimal(loader, node, "base-60", path, problems, file)
        return _exact(Decimal(text), node, path, problems, file)
    if node.tag == "tag:yaml.org,2002:int":
        if not _DECIMAL_INTEGER.match(node.value):
            kind = ("base-60" if ":" in node.value else "hexadecimal" if "x" in node.value
                    else "binary" if "b" in node.value else "octal")
            return _not_decimal(loader, node, kind, path, problems, file)
        return _exact(int(node.value.replace("_", "")), node, path, problems, file)
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as error:  # a date that does not exist: 2026-02-30, 2026-13-01
        kind = "date" if node.tag == "tag:yaml.org,2002:timestamp" else "value"
        problems.append(Problem(file, node.start_mark.line + 1, format_key(path), f"{node.value} is not a valid {kind} ({error})"))
        return None


# YAML 1.1 (PyYAML's) reads 010 as 8 and 1:30 as 90: a config number must be written in
# decimal, so that a price or a limit is never the value of some other spelling.
_DECIMAL_INTEGER = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
# Every number meterctl keeps is a DECIMAL(38, 18): below 10^20, at most 18 decimal places.
_MAX_WHOLE_DIGITS, _MAX_PLACES = 20, 18


def _not_decimal(loader: _Loader, node: yaml.ScalarNode, kind: str, path: PathKey, problems: list, file: str) -> None:
    try:
        read_as = f" ({loader.construct_object(node)})"
    except (ValueError, ArithmeticError):
        read_as = ""
    article = "an" if kind[0] in "aeiou" else "a"
    problems.append(Problem(file, node.start_mark.line + 1, format_key(path),
                            f"{node.value} is read by YAML as {article} {kind} number{read_as}: write the number in "
                            "decimal digits (without a leading zero), or quote it if it is text"))
    return None


def _exact(value: Decimal | int, node: yaml.ScalarNode, path: PathKey, problems: list, file: str) -> Decimal | int | None:
    """`value` when meterctl can keep it exactly; otherwise a problem. (Checked on the digits
    alone: arithmetic on 1e400000000 would overflow the decimal context.)"""
    _, digits, exponent = Decimal(value).as_tuple()
    assert isinstance(exponent, int)  # finite: infinities and NaN never reach here
    whole_digits = len(digits) + exponent if any(digits) else 0
    message = None
    if whole_digits > _MAX_WHOLE_DIGITS:
        message = f"{node.value} is too large: numbers must be below 10^{_MAX_WHOLE_DIGITS}"
    elif -exponent > _MAX_PLACES:
        message = f"{node.value}: at most {_MAX_PLACES} decimal places"
    if message:
        problems.append(Problem(file, node.start_mark.line + 1, format_key(path), message))
        return None
    return value


def load_document(path: Path) -> Document:
    """Parse one YAML file; syntax errors and duplicate keys raise ConfigProblems."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputNotFoundError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigProblems([Problem(file, None, "", f"cannot be read: {error}")]) from None
    return parse_document(text, file)


def parse_document(text: str, file: str) -> Document:
    """Parse YAML text (named `file` in problems)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else None
        message = getattr(error, "problem", None) or str(error)
        raise ConfigProblems([Problem(file, line, "", f"not valid YAML: {message}")]) from None
    finally:
        loader.dispose()
    lines: dict[PathKey, int] = {}
    problems: list[Problem] = []
    data = _build(loader, node, (), lines, problems, file) if node is not None else None
    if problems:
        raise ConfigProblems(problems)
    return Document(file, data, lines)


def validation_problems(document: Document, error: ValidationError, prefix: PathKey = ()) -> list[Problem]:
    """Pydantic errors as file:line key: message problems."""
    found = []
    for item in error.errors(include_url=False):
        loc = prefix + tuple(part for part in item["loc"] if not (isinstance(part, str) and part.startswith("function-")))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "value_error" and "error" in item.get("ctx", {}):
            message = str(item["ctx"]["error"])
        found.append(document.problem(loc, message))
    return found


def validate(document: Document, model: type[Model], data: Any = None, prefix: PathKey = ()) -> Model:
    try:
        return model.model_validate(document.data if data is None else data)
    except ValidationError as error:
        raise ConfigProblems(validation_problems(document, error, prefix)) from None
