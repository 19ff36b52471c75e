"""A catalogue search: free text over prompts plus field filters, all combined with AND."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from .rows import absolute, hash_kind, normalized, parse_time, seed_to_db, stamp

# Words as FTS5's unicode61 tokenizer sees them; each becomes one quoted term, so no query text
# is ever FTS5 syntax (`OR`, `NEAR`, `"`, `*`, `-` are just words or nothing).
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 50


class QueryError(ValueError):
    """A search that cannot run as given: a bad date or limit. The message names the option."""


@dataclass(frozen=True)
class Query:
    text: str | None = None
    lora: str | None = None
    model: str | None = None
    seed: int | None = None
    sampler: str | None = None
    since: str | None = None
    until: str | None = None
    folder: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit must be 1..{MAX_LIMIT}, got {self.limit}")
        if self.seed is not None and seed_to_db(self.seed) is None:
            raise QueryError(f"seed must be 0..{2**64 - 1}, got {self.seed}")
        if self.offset < 0:
            raise QueryError(f"offset must be 0 or more, got {self.offset}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, moment(value, name, end=name == "until"))
        if self.folder is not None:
            object.__setattr__(self, "folder", absolute(self.folder))

    def words(self) -> list[str]:
        return _WORD.findall(self.text or "")

    def fts(self) -> str | None:
        """The FTS5 MATCH expression: every word of the text, each a quoted phrase (AND)."""
        words = self.words()
        return " ".join('"' + w.replace('"', '""') + '"' for w in words) if words else None


def model_terms(value: str) -> tuple[str, str | None, str | None]:
    """(normalized name, hash column, lower-case hash) a --model/--lora value matches."""
    text = value.strip()
    kind = hash_kind(text)
    return normalized(text), kind, text.lower() if kind else None


def moment(text: str, name: str = "date", *, end: bool = False) -> str:
    """An ISO date or date-time as the catalogue stores times: `YYYY-MM-DDTHH:MM:SSZ`, UTC.

    `end` makes it an exclusive upper bound: a bare date means the end of that day.
    """
    value = text.strip()
    when = parse_time(value)
    if when is None:
        raise QueryError(f"{name}: {text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)")
    try:
        if end:
            when += timedelta(days=1) if len(value) == 10 else timedelta(seconds=1)
        return stamp(when)
    except OverflowError as err:
        raise QueryError(f"{name}: {text!r} is out of range") from err
