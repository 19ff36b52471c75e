"""Audit: the model and LoRA hashes catalogued files claim, checked against the local model folders.

Each distinct (role, name, hashes) the catalogue holds is looked up by name in the model folders
(as typed, else by its normalised name in the role's folders and their subfolders) and the file
found is hashed through the pack's hash cache. A claim is `ok` (same hash), `mismatch` (a file of
that name with another hash: a LoRA replaced, a checkpoint re-downloaded in another version),
`gone` (no local file of that name) or `unverifiable` (a file is there but the catalogue holds no
hash for it, no folder is known for its role, or the file cannot be read).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..metadata.hashing import ROLE_FOLDERS, HashCache, HashResult, RootsLocator
from ..metadata.hashing.locate import DEFAULT_LAYOUT
from .query import MAX_LIMIT, Query
from .rows import MODEL_SUFFIXES, normalized
from .store import Catalogue

OK, MISMATCH, GONE, UNVERIFIABLE = "ok", "mismatch", "gone", "unverifiable"
STATUSES = (MISMATCH, GONE, UNVERIFIABLE, OK)  # the order a report lists them in
HASH_KEYS = ("sha256", "autov2", "autov3")


@dataclass(frozen=True)
class Claim:
    """One model as catalogued files name it: its role, name and hashes (None when not recorded)."""

    role: str
    name: str
    sha256: str | None
    autov2: str | None
    autov3: str | None

    def hashes(self) -> dict[str, str]:
        return {k: v for k in HASH_KEYS if (v := getattr(self, k)) is not None}


@dataclass
class Finding:
    """What the audit found for one claim, and which catalogued files make it."""

    claim: Claim
    files: list[str] = field(default_factory=list)
    status: str = UNVERIFIABLE
    path: str | None = None  # the local file compared with
    local: dict[str, str] = field(default_factory=dict)  # its hashes, cut to the lengths the claim has
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "role": self.claim.role,
            "name": self.claim.name,
            "claimed": self.claim.hashes(),
            "local": self.local or None,
            "path": self.path,
            "count": len(self.files),
            "files": self.files,
            "reason": self.reason,
        }


def claims(catalogue: Catalogue) -> dict[Claim, list[str]]:
    """Every distinct claim in the catalogue with the paths of the files that make it."""
    out: dict[Claim, list[str]] = {}
    for row in _all_rows(catalogue):
        for model in row["models"]:
            claim = Claim(model["role"], model["name"], model["sha256"], model["autov2"], model["autov3"])
            paths = out.setdefault(claim, [])
            if row["path"] not in paths:  # a file naming one model twice claims it once
                paths.append(row["path"])
    return out


def _all_rows(catalogue: Catalogue) -> Iterator[dict[str, Any]]:
    # Through the backend-neutral search, page by page, so both backends serve the audit.
    offset = 0
    while True:
        rows = catalogue.search(Query(limit=MAX_LIMIT, offset=offset))
        yield from rows
        if len(rows) < MAX_LIMIT:
            return
        offset += MAX_LIMIT


class Folders:
    """The local model files: a claim's name as typed, else its normalised name in the role's folders."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.roots = tuple(Path(r) for r in roots)
        self.locator = RootsLocator(self.roots)
        self._by_norm: dict[str, dict[str, list[Path]]] = {}

    def find(self, role: str, name: str) -> list[Path]:
        """Candidate files for `name`, the exact one first; empty when there is none."""
        exact = self.locator.locate(role, name)
        if exact is not None:
            return [exact]
        return list(self._index(role).get(normalized(name), []))

    def _index(self, role: str) -> dict[str, list[Path]]:
        index = self._by_norm.get(role)
        if index is None:
            index = self._by_norm[role] = {}
            for directory in self._directories(role):
                for path in sorted(directory.rglob("*")):
                    if path.suffix.lower() in MODEL_SUFFIXES and path.is_file():
                        index.setdefault(normalized(path.name), []).append(path)
        return index

    def _directories(self, role: str) -> Iterator[Path]:
        for folder in ROLE_FOLDERS.get(role, ()):
            for root in self.roots:
                for directory in DEFAULT_LAYOUT.get(folder, (folder,)):
                    if (root / directory).is_dir():
                        yield root / directory


def audit(catalogue: Catalogue, roots: Iterable[str | Path], cache: HashCache) -> list[Finding]:
    """Every claim of the catalogue checked against the model folders under `roots`."""
    folders = Folders(roots)
    findings = [check(Finding(claim, files), folders, cache) for claim, files in claims(catalogue).items()]
    order = {status: i for i, status in enumerate(STATUSES)}
    return sorted(findings, key=lambda f: (order[f.status], f.claim.role, f.claim.name.lower(), -len(f.files)))


def check(finding: Finding, folders: Folders, cache: HashCache) -> Finding:
    """Classify one claim (the finding is filled in and returned)."""
    claim = finding.claim
    if claim.role not in ROLE_FOLDERS:
        finding.reason = f"no model folder is known for role {claim.role!r}"
        return finding
    candidates = folders.find(claim.role, claim.name)
    if not candidates:
        finding.status, finding.reason = GONE, "no local file of that name"
        return finding
    if not claim.hashes():
        finding.path, finding.reason = str(candidates[0]), "the catalogue holds no hash for it"
        return finding
    compared: tuple[Path, dict[str, str]] | None = None
    for path in candidates:
        result = cache.get(path)
        local = local_hashes(result, claim)
        if result.error is not None or not local:
            why = result.error or "it has no hash of the kinds the catalogue holds"
            finding.path, finding.reason = str(path), f"cannot be compared: {why}"
            continue
        if all(claim.hashes()[k] == v for k, v in local.items()):
            finding.status, finding.path, finding.local, finding.reason = OK, str(path), local, None
            return finding
        compared = compared or (path, local)
    if compared is not None:
        finding.status, finding.path, finding.local = MISMATCH, str(compared[0]), compared[1]
        finding.reason = "a local file of that name has another hash"
    return finding


def local_hashes(result: HashResult, claim: Claim) -> dict[str, str]:
    """The local file's hashes the claim also has, AutoV3 cut to the catalogue's length (12 hex)."""
    full = result.hashes()
    claimed = claim.hashes()
    if "autov3" in full and "autov3" in claimed:
        full["autov3"] = full["autov3"][: len(claimed["autov3"])]
    return {k: v for k, v in full.items() if k in claimed}


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for finding in findings:
        out[finding.status] += 1
    return out
