"""The catalogue's tables, versioned: each migration is applied once and recorded in `schema_migrations`.

Times are UTC ISO strings (`YYYY-MM-DDTHH:MM:SSZ`), so they compare as text on every backend.
`files.made` is the record's creation time, or the file's modification time when it has none.
A model row is any model the record names; LoRAs are the rows with role `lora`, with strengths.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"

# SQLite's DDL, version by version; a new version appends a list and never edits an old one.
SQLITE_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            folder TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            digest TEXT NOT NULL,
            kind TEXT NOT NULL,
            format TEXT,
            width INTEGER,
            height INTEGER,
            frames INTEGER,
            made TEXT NOT NULL,
            indexed TEXT NOT NULL
        )""",
        "CREATE INDEX files_digest ON files (digest)",
        "CREATE INDEX files_made ON files (made)",
        """CREATE TABLE generations (
            file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
            prompt TEXT,
            negative TEXT,
            seed INTEGER,
            steps INTEGER,
            cfg REAL,
            sampler TEXT,
            scheduler TEXT,
            passes TEXT NOT NULL
        )""",
        "CREATE INDEX generations_seed ON generations (seed)",
        "CREATE INDEX generations_sampler ON generations (sampler COLLATE NOCASE)",
        """CREATE TABLE models (
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            name TEXT NOT NULL,
            norm TEXT NOT NULL,
            sha256 TEXT,
            autov2 TEXT,
            autov3 TEXT,
            strength_model REAL,
            strength_clip REAL
        )""",
        "CREATE INDEX models_file ON models (file_id)",
        "CREATE INDEX models_norm ON models (norm, role)",
        "CREATE INDEX models_sha256 ON models (sha256)",
        "CREATE INDEX models_autov2 ON models (autov2)",
        "CREATE INDEX models_autov3 ON models (autov3)",
        """CREATE TABLE provenance (
            file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
            capture_mode TEXT,
            created TEXT,
            comfyui_version TEXT,
            pack_version TEXT,
            prompt_id TEXT,
            record TEXT NOT NULL
        )""",
        # The prompts' full-text index; its rowid is the file's id, kept in step by the writer.
        "CREATE VIRTUAL TABLE prompts USING fts5 (prompt, negative, tokenize = 'unicode61')",
    ),
}
