"""Capture at the source: usage events appended to a spool directory that `meterctl run
--spool DIR` ingests, off the request's critical path.

    from meterctl.spool import Writer

    spool = Writer("/var/spool/meterctl")           # one per process; share it between threads
    spool.write("cus_42", "api_call", quantity=1, properties={"endpoint": "/v1/orders"})
    spool.close()                                   # or `with Writer(...) as spool:`; at exit it closes itself

A `write` formats one line and appends it to memory: no disk I/O, no database, nothing
heavier than the standard library is imported. Lines reach the current file when 64 KiB
are waiting, every `flush_seconds` (a background thread), and on `flush`/`close`, each time
as whole lines in one append. The current file (`<host>-<pid>-<start>-<n>.jsonl.part`) is
named so that `run` leaves it alone; it is renamed to `.jsonl`, closed, when it reaches
`max_bytes` or `max_seconds` of age, and on `close`. Each process writes its own files, so
processes never interleave; threads take turns on a lock.

A crash loses at most what was not yet appended (the last `flush_seconds`). A file left
`.part` by a process that died is closed by the next Writer on the same host and spool:
cut back to its last complete line (a torn append never becomes an event), then renamed.
Every line carries an `event_id` (generated when none is given), so a file ingested twice
is deduplicated, never billed twice.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

OPEN_SUFFIX = ".jsonl.part"
CLOSED_SUFFIX = ".jsonl"
FLUSH_BYTES = 64 * 1024


class Writer:
    def __init__(self, spool_dir: str | Path, *, max_bytes: int = 16 * 1024 * 1024, max_seconds: float = 60.0,
                 flush_seconds: float = 1.0) -> None:
        self.directory = Path(spool_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.flush_seconds = flush_seconds
        self._host = socket.gethostname().replace("-", "_") or "host"
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._written = 0
        self._sequence = 0
        self._pid = os.getpid()
        self._closed = False
        self.recovered = close_orphans(self.directory, self._host)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_tick, args=(weakref.ref(self), self._stop, flush_seconds),
                                        name="meterctl-spool", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, customer_id: str, event_name: str, *, quantity: int | Decimal | str | float | None = None,
              properties: Mapping[str, Any] | None = None, event_id: str | None = None,
              timestamp: datetime | str | None = None) -> str:
        """Append one event; returns its event_id."""
        line, event_id = _line(customer_id, event_name, quantity, properties, event_id, timestamp)
        with self._lock:
            if self._closed:
                raise ValueError("this spool writer is closed")
            self._pending.append(line)
            self._pending_bytes += len(line)
            if self._pending_bytes >= FLUSH_BYTES:
                self._flush()
        return event_id

    def flush(self) -> None:
        """Append what is waiting to the current file (and close it when it is due)."""
        with self._lock:
            self._flush()
            self._rotate_if_due()

    def close(self) -> None:
        """Append what is waiting and close the current file, so that the next `run` takes it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._flush()
            self._finish()
        atexit.unregister(self.close)

    # ------------------------------------------------------------ under the lock

    def _flush(self) -> None:
        if os.getpid() != self._pid:  # a forked child: the file is the parent's, the lines are its own
            self._fd, self._path, self._written, self._pid = None, None, 0, os.getpid()
        if not self._pending:
            return
        data = "".join(self._pending).encode()
        self._pending, self._pending_bytes = [], 0
        if self._fd is None:
            self._open()
        assert self._fd is not None
        view = memoryview(data)
        while view:  # a regular file takes it whole; loop for the rare short write
            done = os.write(self._fd, view)
            view = view[done:]
        self._written += len(data)
        if self._written >= self.max_bytes:
            self._finish()

    def _rotate_if_due(self) -> None:
        if self._fd is not None and time.monotonic() - self._opened_at >= self.max_seconds:
            self._finish()

    def _open(self) -> None:
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._path = self.directory / f"{self._host}-{self._pid}-{stamp}-{self._sequence:06d}{OPEN_SUFFIX}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        self._opened_at = time.monotonic()
        self._written = 0

    def _finish(self) -> None:
        """Close the current file and give it its closed name."""
        if self._fd is None or self._path is None:
            return
        os.fsync(self._fd)
        os.close(self._fd)
        os.rename(self._path, self._path.with_name(self._path.name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX))
        self._fd, self._path = None, None


def _tick(writer: weakref.ref[Writer], stop: threading.Event, seconds: float) -> None:
    """Flush (and rotate by age) every `seconds`, until the writer closes or is gone."""
    while not stop.wait(seconds):
        found = writer()
        if found is None:
            return
        found.flush()
        del found


def _line(customer_id: str, event_name: str, quantity: Any, properties: Mapping[str, Any] | None,
          event_id: str | None, timestamp: datetime | str | None) -> tuple[str, str]:
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise ValueError("customer_id must be a non-empty string")
    if not isinstance(event_name, str) or not event_name.strip():
        raise ValueError("event_name must be a non-empty string")
    event_id = event_id if event_id is not None else f"evt_{uuid.uuid4().hex}"
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        stamp = timestamp.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    elif timestamp is None:
        stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    else:
        stamp = timestamp
    parts = [f'"event_id":{json.dumps(event_id)}', f'"customer_id":{json.dumps(customer_id)}',
             f'"event_name":{json.dumps(event_name)}', f'"timestamp":{json.dumps(stamp)}']
    if quantity is not None:
        parts.append(f'"quantity":{_number(quantity)}')
    if properties:
        parts.append(f'"properties":{json.dumps(dict(properties), separators=(",", ":"), default=_property)}')
    return "{" + ",".join(parts) + "}\n", event_id


def _number(quantity: Any) -> str:
    """The quantity as JSON number text, exactly as given (a float by its shortest repr)."""
    if isinstance(quantity, bool):
        raise ValueError("quantity must be a number, not a boolean")
    if isinstance(quantity, int):
        return str(quantity)
    value = Decimal(repr(quantity)) if isinstance(quantity, float) else Decimal(str(quantity))
    if not value.is_finite():
        raise ValueError(f"quantity must be a finite number, not {quantity!r}")
    return format(value, "f")


def _property(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"a property value of type {type(value).__name__} cannot be written as JSON")


def close_orphans(directory: Path, host: str) -> tuple[str, ...]:
    """Close the `.part` files this host's dead processes left: cut back to the last complete
    line, then renamed to `.jsonl`. Returns their new names."""
    closed = []
    for path in sorted(directory.glob(f"{host}-*{OPEN_SUFFIX}")):
        try:
            pid = int(path.name[len(host) + 1:].split("-", 1)[0])
        except ValueError:
            continue
        if _alive(pid):
            continue
        with open(path, "r+b") as handle:
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            if keep < len(data):
                handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        target = path.with_name(path.name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX)
        if keep:
            os.rename(path, target)
            closed.append(target.name)
        else:
            path.unlink()
    return tuple(closed)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
