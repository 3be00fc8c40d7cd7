"""How the core reports progress without printing: the CLI implements this with Rich."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start_file(self, name: str, total_bytes: int | None) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def end_file(self) -> None: ...


class NullProgress:
    """Reports nothing: the default for library callers and tests."""

    def start_file(self, name: str, total_bytes: int | None) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def end_file(self) -> None:
        pass
