"""What the hashing layer knows about one model file version."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HashResult:
    """Hashes and curated header metadata of one file version, or why there are none.

    `error` set means the file could not be hashed (missing, unreadable): no hashes at all.
    `header_error` set means a .safetensors file whose header was refused: the whole-file hashes
    are there, AutoV3 and the metadata are not.
    """

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    autov3: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    header_error: str | None = None

    @property
    def autov2(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None

    def hashes(self) -> dict[str, str]:
        """The record's `Model.hashes`: sha256, autov2 and (safetensors) autov3, lowercase hex."""
        out: dict[str, str] = {}
        if self.sha256:
            out["sha256"] = self.sha256
            out["autov2"] = self.sha256[:10]
        if self.autov3:
            out["autov3"] = self.autov3
        return out

    def same_version(self, size: int, mtime_ns: int) -> bool:
        return self.sha256 is not None and self.size == size and self.mtime_ns == mtime_ns
