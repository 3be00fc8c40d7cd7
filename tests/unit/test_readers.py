"""Chunks of numbered lines: every byte of the input in exactly one line, in order, whatever
the chunk size."""

from __future__ import annotations

import gzip
import hashlib
import io
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterctl.io import readers
from meterctl.io.readers import UTF8_BOM, LineReader, split_lines
from meterctl.io.sources import Source


def _read(source: Source, chunk_bytes: int) -> tuple[list[tuple[int, bytes]], list[int], str]:
    reader = LineReader(source, chunk_bytes)
    lines, sizes = [], []
    for table, nbytes in reader.chunks():
        # Copied out at once: the chunk's buffer is refilled for the next one.
        lines += zip(table.column("line_no").to_pylist(), table.column("raw").to_pylist(), strict=True)
        sizes.append(nbytes)
    return lines, sizes, reader.content_sha256()


def _expected(content: bytes) -> list[tuple[int, bytes]]:
    body = content[len(UTF8_BOM):] if content.startswith(UTF8_BOM) else content
    pieces = body.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    return list(enumerate(lines, start=1))


contents = st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), max_size=40).flatmap(
    lambda lines: st.tuples(st.booleans(), st.booleans()).map(
        lambda flags: (UTF8_BOM if flags[0] else b"") + b"\n".join(lines) + (b"\n" if flags[1] else b"")
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=contents, chunk_bytes=st.integers(min_value=1, max_value=700))
def test_every_line_comes_out_once_in_order_whatever_the_chunk_size(tmp_path, content, chunk_bytes):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    lines, sizes, sha = _read(Source(str(path), path), chunk_bytes)
    assert lines == _expected(content)
    assert sum(sizes) == len(content) - (len(UTF8_BOM) if content.startswith(UTF8_BOM) else 0)
    assert sha == hashlib.sha256(content).hexdigest()


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       ends_with_newline=st.booleans(), block=st.integers(min_value=1, max_value=17))
def test_newlines_are_found_across_the_search_blocks(lines, ends_with_newline, block):
    content = b"\n".join(lines) + (b"\n" if ends_with_newline and lines else b"")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(readers, "NEWLINE_BLOCK_BYTES", block)  # lines straddle blocks, ends fall on their edges
        table = split_lines(content, 5)
    pieces = content.split(b"\n")
    expected = list(enumerate([p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else []), start=5))
    assert list(zip(table.column("line_no").to_pylist(), table.column("raw").to_pylist(), strict=True)) == expected


def test_a_line_longer_than_the_buffer_after_a_byte_order_mark(tmp_path):
    content = UTF8_BOM + b'{"long":"' + b"x" * 5000 + b'"}\n{"b":1}\n' + b"y" * 3000
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    lines, _, _ = _read(Source(str(path), path), 64)
    assert lines == _expected(content)
    assert lines[0][1].startswith(b'{"long"')


def test_gzip_and_standard_input_read_the_same_lines(tmp_path, monkeypatch):
    content = b"".join(b'{"n":%d}\n' % i for i in range(2000))
    packed = tmp_path / "in.jsonl.gz"
    packed.write_bytes(gzip.compress(content))
    assert _read(Source(str(packed), packed), 1000)[0] == _expected(content)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(content))))
    lines, _, sha = _read(Source("-", None), 1000)
    assert lines == _expected(content)
    assert sha == hashlib.sha256(content).hexdigest()
