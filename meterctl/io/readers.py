"""Reading input files as chunks of numbered lines (or Parquet rows) for the SQL stage.

Line splitting is vectorised (numpy finds the newlines, Arrow wraps the bytes without
copying), so Python never loops over events. Every chunk ends on a line boundary. The
content hash is computed on a worker thread while DuckDB works on the previous chunk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from meterctl.errors import InputNotFoundError
from meterctl.events import DEFAULT_CHUNK_BYTES
from meterctl.io.sources import Source, shown_path

PARQUET_BATCH_ROWS = 250_000
SCAN_BATCH_ROWS = 1 << 16

GZIP_MAGIC = b"\x1f\x8b"


def looks_gzipped(head: bytes) -> bool:
    """A gzip header: magic, deflate (method 8), reserved flag bits clear, and room for a
    whole header. A text line that merely starts with the two magic bytes is text."""
    return len(head) >= 10 and head[:2] == GZIP_MAGIC and head[2] == 8 and head[3] & 0xE0 == 0
PARQUET_MAGIC = b"PAR1"
UTF8_BOM = b"\xef\xbb\xbf"

FORMAT_JSONL = "jsonl"
FORMAT_JSONL_GZ = "jsonl.gz"
FORMAT_PARQUET = "parquet"


@dataclass(frozen=True)
class FileInfo:
    size_bytes: int | None
    mtime_ns: int | None
    absolute_path: str | None


def file_info(source: Source) -> FileInfo:
    if source.path is None:
        return FileInfo(None, None, None)
    stat = source.path.stat()
    return FileInfo(stat.st_size, stat.st_mtime_ns, shown_path(str(source.path.resolve())))


class ContentHasher:
    """SHA-256 of a stream, updated on a worker thread (hashlib releases the GIL)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterctl-hash")
        self._pending: Future[None] | None = None
        self.size = 0

    def update(self, data: memoryview | bytes) -> None:
        """Hash `data` in the background; it must stay unchanged until `wait()` returns."""
        self.size += len(data)
        self.wait()
        self._pending = self._pool.submit(self._hash.update, data)

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def hexdigest(self) -> str:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        self._pool.shutdown(wait=True)
        return self._hash.hexdigest()


class _Bytes(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _sha256_of(handle: _Bytes) -> str:
    digest = hashlib.sha256()
    while block := handle.read(8 << 20):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return _sha256_of(handle)


def content_sha256(path: Path, fmt: str) -> str:
    """The content hash an ingest of this file records: of the decompressed text for gzip."""
    if fmt != FORMAT_JSONL_GZ:
        return sha256_file(path)
    try:
        with gzip.open(path, "rb") as handle:
            return _sha256_of(handle)
    except (OSError, EOFError) as error:
        raise InputNotFoundError(f"{path}: cannot be read: {error}") from error


# Newlines are looked for this many bytes at a time, so that the comparison's scratch is
# small and reused instead of a byte per byte of the chunk (133 MB of fresh memory for a
# default chunk, whose first touch costs as much as the search).
NEWLINE_BLOCK_BYTES = 1 << 20


def newline_scratch() -> np.ndarray:
    return np.empty(NEWLINE_BLOCK_BYTES, dtype=np.bool_)


def split_lines(data: bytes | memoryview, first_line_no: int, scratch: np.ndarray | None = None) -> pa.Table:
    """Number the lines of `data` (which ends with a newline or at end of input).

    Each line keeps its terminator; SQL strips it where the text is shown. The Arrow
    arrays point into `data` without copying it: `raw` (binary) always, and `txt` (the
    same bytes as text) when every line is valid UTF-8. `scratch` (from newline_scratch())
    may be passed to reuse it from one call to the next.
    """
    view = np.frombuffer(data, dtype=np.uint8)
    if scratch is None or scratch.size < NEWLINE_BLOCK_BYTES:
        scratch = newline_scratch()
    found = []
    for start in range(0, view.size, NEWLINE_BLOCK_BYTES):
        block = view[start : start + NEWLINE_BLOCK_BYTES]
        ends = np.flatnonzero(np.equal(block, 10, out=scratch[: block.size]))
        ends += start + 1  # the offset just past each newline
        found.append(ends)
    ends = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
    count = ends.size + (0 if (ends.size and ends[-1] == view.size) or view.size == 0 else 1)
    offsets = np.empty(count + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1 : ends.size + 1] = ends
    offsets[count] = view.size
    lines = pa.Array.from_buffers(
        pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    numbers = pa.array(np.arange(first_line_no, first_line_no + count, dtype=np.int64))
    columns = {"line_no": numbers, "raw": lines}
    # The same bytes as text, when the whole chunk is valid UTF-8 (checked in one pass).
    text = pa.Array.from_buffers(pa.large_string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        text.validate(full=True)
        columns["txt"] = text
    except pa.ArrowInvalid:
        pass
    table = pa.table(columns)
    # DuckDB scans an Arrow table one record batch per thread: several batches keep every
    # core busy (a single batch would be read by one thread).
    return pa.Table.from_batches(table.to_batches(max_chunksize=SCAN_BATCH_ROWS), table.schema)


class Reader(Protocol):
    """A source read in chunks for the event store, and what reading it found out."""

    format: str  # jsonl | jsonl.gz | parquet

    def chunks(self) -> Iterator[tuple[pa.Table, int]]:
        """(chunk, bytes of the source it covers), each chunk ending on a line or row boundary."""
        ...

    def content_sha256(self) -> str:
        """Of the content (decompressed for gzip), once every chunk was read."""
        ...

    @property
    def size_bytes(self) -> int:
        """The size of what was read (standard input has no size until it ends)."""
        ...


class LineReader:
    """Chunks of numbered lines from a JSONL stream (plain, gzip, or standard input)."""

    def __init__(self, source: Source, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.source = source
        self.chunk_bytes = chunk_bytes
        self.hasher = ContentHasher()
        self.format = FORMAT_JSONL

    def _open(self) -> io.BufferedReader | gzip.GzipFile:
        if self.source.path is None:
            raw: io.BufferedReader = stdin_bytes()
        else:
            raw = open(self.source.path, "rb")  # noqa: SIM115 - closed in chunks()
        if looks_gzipped(raw.peek(SNIFF_BYTES)[:SNIFF_BYTES]):
            self.format = FORMAT_JSONL_GZ
            return gzip.GzipFile(fileobj=raw, mode="rb")
        return raw

    def chunks(self) -> Iterator[tuple[pa.Table, int]]:
        """Yield (numbered lines, bytes consumed), each chunk ending on a line boundary.

        One buffer is reused: a chunk's Arrow arrays point into it, so the caller must be
        done with a chunk before asking for the next (DuckDB copies what it keeps).
        """
        stream = self._open()
        capacity = max(self._chunk_capacity(), 1)  # an empty file still needs room to find its end
        buffer = bytearray(capacity)
        scratch = newline_scratch()
        filled = 0  # bytes at the front of `buffer`: the carried partial line, then new data
        next_line = 1
        at_start = True  # until enough bytes are read to tell whether a byte order mark starts them
        skip = 0  # the byte order mark's length, while it sits at the front of `buffer`
        eof = False
        try:
            while not eof:
                if filled == capacity:  # one line longer than the buffer: grow it
                    capacity *= 2
                    buffer = buffer + bytearray(capacity - len(buffer))
                view = memoryview(buffer)
                start = filled
                while filled < capacity:
                    try:
                        got = stream.readinto(view[filled:])
                    except (OSError, EOFError, gzip.BadGzipFile) as error:
                        raise InputNotFoundError(f"{self.source.name}: cannot be read: {error}") from error
                    if not got:
                        eof = True
                        break
                    filled += got
                self.hasher.update(view[start:filled])
                if at_start:
                    if filled < len(UTF8_BOM) and not eof:
                        continue
                    at_start = False
                    skip = len(UTF8_BOM) if filled >= len(UTF8_BOM) and view[: len(UTF8_BOM)] == UTF8_BOM else 0
                begin = skip
                if eof:
                    cut = filled
                else:
                    cut = buffer.rfind(b"\n", begin, filled) + 1
                    if cut == 0:
                        continue
                if cut > begin:
                    table = split_lines(view[begin:cut], next_line, scratch)
                    next_line += table.num_rows
                    yield table, cut - begin
                    del table
                # The hash of this chunk must be done before its bytes are overwritten.
                self.hasher.wait()
                rest = filled - cut
                buffer[:rest] = buffer[cut:filled]
                filled = rest
                skip = 0
        finally:
            if self.source.path is not None:
                stream.close()

    def _chunk_capacity(self) -> int:
        """The buffer size: `chunk_bytes`, evened out over a plain file of known size.

        Each chunk is checked against every event stored before it, so a small last chunk
        costs nearly as much as a full one: a file of 3.05 chunks is read in 3 slightly
        larger chunks instead (at most 1.5 x `chunk_bytes`, plus 1/64 of it as room for the
        partial lines carried from one chunk to the next).
        """
        if self.source.path is None or self.format != FORMAT_JSONL:
            return self.chunk_bytes
        size = self.source.path.stat().st_size
        count = max(1, round(size / self.chunk_bytes))
        return -(-size // count) + self.chunk_bytes // 64

    def content_sha256(self) -> str:
        return self.hasher.hexdigest()

    @property
    def size_bytes(self) -> int:
        return self.hasher.size


SNIFF_BYTES = 10  # a whole gzip header; the Parquet magic is the first four


class _HeadFirst(io.RawIOBase):
    """The first bytes of a stream, already read in full, then the rest of it."""

    def __init__(self, head: bytes, rest: io.BufferedIOBase, owner: object = None) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest
        # The text wrapper `rest` came from: once unreferenced it would close `rest`.
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if self._head:
            count = min(len(target), len(self._head))
            target[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        return self._rest.readinto(target)


class _SniffableStdin(io.BufferedReader):
    """Standard input whose peek() shows its first SNIFF_BYTES bytes at once."""


def stdin_bytes() -> io.BufferedReader:
    """Standard input as a byte stream whose peek() shows its first SNIFF_BYTES bytes (all of
    a shorter input), however the pipe delivers them.

    One peek on a pipe returns only what has arrived so far: a gzip stream whose first five
    bytes came alone would be sniffed as text. So the head is read in full first.
    """
    given = sys.stdin.buffer
    if isinstance(given, _SniffableStdin):
        return given
    head = b""
    while len(head) < SNIFF_BYTES and (more := given.read(SNIFF_BYTES - len(head))):
        head += more
    stream = _SniffableStdin(_HeadFirst(head, given, owner=sys.stdin))  # type: ignore[arg-type]
    sys.stdin = io.TextIOWrapper(stream)  # later readers share the same buffer
    return stream


def sniff_format(source: Source) -> str:
    """jsonl, jsonl.gz or parquet, from the content rather than the name.

    A Parquet file starts and ends with PAR1; a text line that merely starts with those
    four bytes stays a JSONL line (and is dead-lettered as such).
    """
    if source.path is None:
        return FORMAT_JSONL
    if source.path.name.lower().endswith(".parquet"):
        return FORMAT_PARQUET  # a damaged one is reported as such, not read as text
    with open(source.path, "rb") as handle:
        head = handle.read(10)
        if head[:4] == PARQUET_MAGIC and source.path.stat().st_size >= 8:
            handle.seek(-4, os.SEEK_END)
            if handle.read(4) == PARQUET_MAGIC:
                return FORMAT_PARQUET
    if looks_gzipped(head):
        return FORMAT_JSONL_GZ
    return FORMAT_JSONL


def spool_stdin() -> Path:
    """Copy standard input to a temporary file (Parquet needs to seek)."""
    handle, name = tempfile.mkstemp(prefix="meterctl-stdin-")
    with os.fdopen(handle, "wb") as out:
        shutil.copyfileobj(stdin_bytes(), out, 8 << 20)
    return Path(name)


class ParquetReader:
    """Batches of Parquet rows with their columns as stored, and the row numbers (from 1)
    appended as the last column, under a name no column of the file has."""

    format = FORMAT_PARQUET

    def __init__(self, source: Source, batch_rows: int = PARQUET_BATCH_ROWS) -> None:
        if source.path is None:
            raise ValueError("Parquet is read from a file (standard input is spooled to one first)")
        self.source = source
        self.path: Path = source.path
        self.batch_rows = batch_rows
        self._sha: str | None = None

    def chunks(self) -> Iterator[tuple[pa.Table, int]]:
        try:
            import pyarrow.parquet as pq  # only Parquet input needs it (start-up time)

            parquet = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as error:
            raise InputNotFoundError(f"{self.source.name}: cannot be read as Parquet: {error}") from error
        total = parquet.metadata.num_rows or 1
        size = self.path.stat().st_size
        next_row = 1
        row_column = "__line_no"
        while row_column.lower() in {name.lower() for name in parquet.schema_arrow.names}:
            row_column += "_"  # DuckDB compares column names without case
        try:
            for batch in parquet.iter_batches(batch_size=self.batch_rows):
                count = batch.num_rows
                numbers = pa.array(np.arange(next_row, next_row + count, dtype=np.int64))
                table = pa.Table.from_batches([batch]).append_column(row_column, numbers)
                table = pa.Table.from_batches(table.to_batches(max_chunksize=SCAN_BATCH_ROWS), table.schema)
                next_row += count
                yield table, size * count // total
        except (OSError, pa.ArrowException) as error:
            raise InputNotFoundError(f"{self.source.name}: cannot be read as Parquet: {error}") from error

    def content_sha256(self) -> str:
        if self._sha is None:
            self._sha = sha256_file(self.path)
        return self._sha

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size
