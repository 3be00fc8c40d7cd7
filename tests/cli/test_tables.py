"""Tables: Rich on a terminal when short, plain aligned text when piped or long."""

from __future__ import annotations

import io

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from meterctl.cli.common import RICH_TABLE_ROWS, print_table


def _invoices(rows: int) -> Table:
    table = Table(title="Invoices")
    table.add_column("customer")
    table.add_column("total", justify="right")
    for i in range(rows):
        table.add_row(f"cus_{i:06d}", f"{i * 1.5:.2f}")
    return table


def _printed(table: Table, terminal: bool) -> str:
    out = io.StringIO()
    print_table(Console(file=out, force_terminal=terminal, width=100, markup=False), table)
    return out.getvalue()


def test_piped_tables_are_plain_aligned_text_with_every_cell():
    text = _printed(_invoices(3), terminal=False)
    lines = text.splitlines()
    assert lines[0] == "Invoices"
    assert lines[1].split() == ["customer", "total"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert [line.split() for line in lines[3:]] == [["cus_000000", "0.00"], ["cus_000001", "1.50"], ["cus_000002", "3.00"]]
    # Right-justified column: the numbers end in the same column as the header.
    assert len({len(line) for line in lines[1:]}) == 1
    assert "│" not in text and "┃" not in text


def test_short_tables_on_a_terminal_are_drawn_by_rich():
    assert "┃" in _printed(_invoices(3), terminal=True)


def test_long_tables_on_a_terminal_are_plain_so_they_print_at_once():
    text = _printed(_invoices(RICH_TABLE_ROWS + 1), terminal=True)
    assert "┃" not in text
    assert len(text.splitlines()) == 3 + RICH_TABLE_ROWS + 1


def _names(*names: str) -> Table:
    """A name column and a right-aligned count."""
    table = Table()
    table.add_column("name")
    table.add_column("n", justify="right")
    for i, name in enumerate(names, start=1):
        table.add_row(name, str(i * 11))
    return table


def test_wide_characters_and_line_breaks_keep_the_columns_aligned():
    lines = _printed(_names("東京 Ltd", "two\nlines"), terminal=False).splitlines()
    assert lines[2].startswith("東京 Ltd ") and lines[3].startswith("two / lines")
    assert len({cell_len(line) for line in lines}) == 1


def test_control_characters_are_shown_escaped_not_sent_to_the_terminal():
    text = _printed(_names("not json\rOVERWRITTEN", "\x1b[31mred\ttab\x85"), terminal=False)
    assert not any(ch in text for ch in "\r\t\x1b\x85")
    lines = text.splitlines()
    assert lines[2].startswith("not json\\rOVERWRITTEN") and lines[3].startswith("\\x1b[31mred\\ttab\\x85")
    assert len({cell_len(line) for line in lines}) == 1


def test_control_characters_in_cells_are_escaped_on_a_terminal_and_in_pipes():
    # An event id or file name may hold an ESC sequence that would clear or recolour the screen.
    for terminal in (True, False):
        table = Table()
        table.add_column("event_id")
        table.add_row("z\x1b[2J")
        out = io.StringIO()
        print_table(Console(file=out, force_terminal=terminal, color_system=None, width=100, markup=False), table)
        assert "\x1b" not in out.getvalue() and "z\\x1b[2J" in out.getvalue(), terminal
