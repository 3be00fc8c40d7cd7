"""Turning the PATH arguments of `ingest` into concrete inputs, before anything is read.

A path may be a file, a directory (its supported files, recursively, in name order),
a glob (expanded here for shells that did not), or `-` for standard input. Every
argument is resolved up front so that a missing file stops the run before any write.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from meterctl.errors import InputNotFoundError

STDIN = "-"
SUPPORTED_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".parquet")


@dataclass(frozen=True)
class Source:
    """One input: a file on disk or standard input."""

    name: str  # as the user will recognise it: the path as given, or '-'
    path: Path | None  # None for standard input

    @property
    def is_stdin(self) -> bool:
        return self.path is None


def shown_path(text: str) -> str:
    """A path as text that can be printed and stored: bytes that are not UTF-8 (which Python
    keeps as lone surrogates) are written as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _supported(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in SUPPORTED_SUFFIXES)


def _check_readable(path: Path, shown: str) -> None:
    if not os.access(path, os.R_OK):
        raise InputNotFoundError(f"{shown}: cannot be read (permission denied)")


def _refuse_broken_links(paths) -> None:
    """An input file that is a link to nothing is missing, not absent: skipping it would
    leave its events out without a word."""
    for path in paths:
        if path.is_symlink() and not path.exists():
            raise InputNotFoundError(f"{shown_path(str(path))}: a symbolic link to a file that does not exist")


def resolve_sources(arguments: list[str]) -> list[Source]:
    """Expand arguments into sources, in order, each file once."""
    if not arguments:
        raise InputNotFoundError("no input given: name files, directories, globs or '-'")
    sources: list[Source] = []
    seen: set[Path] = set()

    def add(path: Path, shown: str) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        shown = shown_path(shown)
        _check_readable(path, shown)
        seen.add(resolved)
        sources.append(Source(shown, path))

    for argument in arguments:
        if argument == STDIN:
            if any(s.is_stdin for s in sources):
                continue
            sources.append(Source(STDIN, None))
            continue
        path = Path(argument)
        if path.is_dir():
            _refuse_broken_links(p for p in path.rglob("*") if _supported(p))
            found = sorted(p for p in path.rglob("*") if p.is_file() and _supported(p))
            if not found:
                raise InputNotFoundError(
                    f"{argument}: directory holds no {', '.join(SUPPORTED_SUFFIXES)} files"
                )
            for file in found:
                add(file, str(file))
        elif path.is_file():
            add(path, argument)
        elif glob.has_magic(argument):
            matches = sorted(Path(m) for m in glob.glob(argument, recursive=True))
            _refuse_broken_links(matches)
            files = [m for m in matches if m.is_file()]
            if not files:
                raise InputNotFoundError(f"{argument}: no file matches this pattern")
            for file in files:
                add(file, str(file))
        elif path.exists():
            raise InputNotFoundError(f"{argument}: not a regular file")
        else:
            raise InputNotFoundError(f"{argument}: no such file or directory")
    return sources
