"""The catalogue: every saved file searchable by prompt, model, LoRA, hash, seed and date.

A package of its own on top of `metadata/`: `rows` turns a file and its record into rows,
`query` is a search, `store` the backend-neutral interface and `open_catalogue`, `sqlite` the
embedded backend (WAL, FTS5). Nothing here imports ComfyUI.
"""

from __future__ import annotations

from .query import Query
from .rows import FileRow, RecordRows, file_row, record_rows
from .store import Catalogue, CatalogueError, open_catalogue

__all__ = [
    "Catalogue",
    "CatalogueError",
    "FileRow",
    "Query",
    "RecordRows",
    "file_row",
    "open_catalogue",
    "record_rows",
]
