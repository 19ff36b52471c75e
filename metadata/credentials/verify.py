"""Verify a file's Content Credentials: signature, hard binding, certificate chain, and our record.

c2pa-python validates the manifest (the claim's signature, the data hash over every byte outside
the manifest, the certificate profile and, with trust anchors, the chain to one of them). Then the
record signed into the manifest is compared with the record the file embeds: the two must agree,
field for field. A verdict is one of:

- `valid`: signed, nothing changed since; `trusted` says whether the signer chains to a trust anchor.
- `tampered`: the bytes, the metadata or the manifest changed after signing (each change named), or
  the manifest was stripped from a file whose own record says it was signed.
- `unsigned`: no manifest, and nothing says there was one.
- `untrusted`: intact, but a trust list was given and the signer is not on it.
- `invalid`: a manifest that does not validate for another reason (expired or malformed credentials).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..budget import Budget, open_regular
from ..errors import MetadataError, ReadError
from ..formats.base import Embedded, sniffers
from ..read import extract
from ..record import Record
from . import manifest as signed
from .locate import has_manifest
from .signer import LIBRARY_MISSING, MIME, TARGET, CredentialError, library_missing

logger = logging.getLogger(__name__)

VALID, TAMPERED, UNSIGNED, UNTRUSTED, INVALID = "valid", "tampered", "unsigned", "untrusted", "invalid"
UNTRUSTED_CODE = "signingCredential.untrusted"
# Validation codes that mean the content or the manifest changed after signing, in words.
TAMPERING = {
    "assertion.dataHash.mismatch": "the file's bytes changed after signing (pixels or metadata)",
    "assertion.bmffHash.mismatch": "the file's bytes changed after signing (media data or metadata)",
    "assertion.boxesHash.mismatch": "the file's bytes changed after signing",
    "assertion.collectionHash.mismatch": "the file's bytes changed after signing",
    "assertion.hashedURI.mismatch": "an assertion of the manifest changed after signing",
    "claimSignature.mismatch": "the manifest's claim changed after signing (its signature no longer matches)",
    "assertion.dataHash.malformed": "the manifest's data hash is damaged",
}
# At most this many differing record fields are named.
DIFFS_SHOWN = 8
DIFF_NODES_MAX = 200_000
# Containers we save that C2PA has no embedding for: such a file is unsigned by necessity.
UNBOUND = ("webm", "mkv", "ogg")


@dataclass
class Verdict:
    """What `verify` found in one file."""

    path: str
    status: str
    reasons: list[str] = field(default_factory=list)
    signer: str | None = None
    issuer: str | None = None
    trusted: bool | None = None  # None: no trust list given
    test_certificate: bool = False
    record: str | None = None  # "agrees", "differs", "not in the manifest", ...
    codes: list[str] = field(default_factory=list)  # c2pa-python's failure codes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """`PATH: status (why; signer)` for people."""
        details = list(self.reasons)
        if self.status == VALID and self.signer:
            details.append(f"signed by {self.signer}")
            if self.trusted:
                details.append("trusted: on the trust list given")
            elif self.test_certificate:
                details.append("an untrusted test certificate")
            else:
                details.append("no trust list given")
        return f"{self.path}: {self.status}" + (f" ({'; '.join(details)})" if details else "")


def format_of(path: Path, head: bytes) -> str | None:
    """The container c2pa-python should read it as: what the readers' sniffers say (a QuickTime brand is
    MOV, Matroska WebM or MKV by its name), else by the file's name."""
    sniffed = next((f.name for f in sniffers() if f.sniff(head)), None)
    if sniffed == "mp4" and head[8:12] == b"qt  ":
        return "mov"
    if sniffed == "matroska":
        return "webm" if path.suffix.lower() == ".webm" else "mkv"
    if sniffed is not None:
        return sniffed
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "m4v": "mp4"}.get(suffix, suffix) if suffix in (*MIME, "jpg", "m4v") else None


def trust_context(trust: Path | None) -> dict[str, Any]:
    """c2pa-python's settings: no network, trust anchors from `trust` (a PEM bundle) when given."""
    settings: dict[str, Any] = {"verify": {"verify_trust": trust is not None, "ocsp_fetch": False}}
    if trust is not None:
        try:
            with open_regular(trust) as fp:
                anchors = fp.read(16 << 20)
        except ReadError as err:
            raise CredentialError(f"the trust list {trust}: {err}") from None
        if b"-----BEGIN CERTIFICATE" not in anchors:
            raise CredentialError(f"the trust list {trust} holds no PEM certificate")
        settings["trust"] = {"trust_anchors": anchors.decode("ascii", "replace")}
    return settings


def verify_file(path: str | Path, trust: Path | None = None) -> Verdict:
    """The verdict on one file; CredentialError when verifying is impossible here (no library, bad trust list),
    ReadError when the file cannot be opened."""
    missing = library_missing()
    if missing is not None:
        raise CredentialError(missing)
    import c2pa

    path = Path(path)
    settings = trust_context(trust)
    with open_regular(path) as fp:
        fmt = format_of(path, fp.read(16))
    verdict = Verdict(path=str(path), status=UNSIGNED)
    if fmt in UNBOUND:
        verdict.reasons = [f"C2PA defines no manifest for {fmt.upper()} files"]
        return _unsigned(path, verdict)
    if fmt not in MIME:
        raise ReadError("not a file C2PA can sign (PNG, JPEG, WEBP, GIF, MP4, MOV, FLAC, MP3)")
    # Only a file with a manifest store, whose container our own budgeted readers walk soundly, reaches
    # c2pa-python's native parser: a hostile file (a box flood, a bomb) never does.
    if not has_manifest(path, fmt):
        return _unsigned(path, verdict)
    budget = Budget()
    try:
        found = extract(path, budget)
    except ReadError as err:
        verdict.status = TAMPERED
        verdict.reasons = [f"the file no longer reads as a sound {fmt.upper()} ({err}): it changed after signing"]
        return verdict
    with open_regular(path) as fp:
        try:
            with c2pa.Context.from_dict(settings) as context, c2pa.Reader(MIME[fmt], fp, context=context) as reader:
                report = json.loads(reader.json())
                state = reader.get_validation_state()
                results = reader.get_validation_results() or {}
        except c2pa.C2paError as err:
            if _no_manifest(err):
                return _unsigned(path, verdict)
            verdict.status, verdict.reasons = INVALID, [f"the C2PA manifest does not read: {_words(err)}"]
            return verdict
    active = _active(report)
    _judge(verdict, state, results, active, trusted=trust is not None)
    _compare_record(verdict, active, _embedded(path, found, budget))
    return verdict


def signed_record(path: Path, fmt: str) -> str | None:
    """The record text our manifest carries whole, or None (no c2pa-python, no store, no record in it).

    Read, not verified (`verify` says whether to trust it); only called for a file our readers walked.
    """
    fmt = {"jpg": "jpeg"}.get(fmt, fmt)
    if fmt not in MIME or library_missing() is not None or not has_manifest(path, fmt):
        return None
    import c2pa

    try:
        with (
            open_regular(path) as fp,
            c2pa.Context.from_dict(trust_context(None)) as context,
            c2pa.Reader(MIME[fmt], fp, context=context) as reader,
        ):
            active = _active(json.loads(reader.json()))
    except (c2pa.C2paError, ValueError) as err:
        raise ReadError(f"the C2PA manifest does not read: {_words(err)}") from err
    body = signed.find(active, signed.RECORD_LABEL)
    text = body.get("record") if isinstance(body, dict) else None
    return text if isinstance(text, str) else None


def _no_manifest(err: Exception) -> bool:
    text = str(err).lower()
    return "manifestnotfound" in text.replace(" ", "") or "no jumbf" in text or "not found" in text


def _words(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


def _active(report: dict[str, Any]) -> dict[str, Any]:
    label = report.get("active_manifest")
    manifests = report.get("manifests") or {}
    found = manifests.get(label) if isinstance(manifests, dict) and isinstance(label, str) else None
    return found if isinstance(found, dict) else {}


def _judge(
    verdict: Verdict, state: str | None, results: dict[str, Any], active: dict[str, Any], *, trusted: bool
) -> None:
    info = active.get("signature_info") or {}
    verdict.signer, verdict.issuer = info.get("common_name"), info.get("issuer")
    from .testca import TEST_MARK

    verdict.test_certificate = TEST_MARK in f"{verdict.signer} {verdict.issuer}"
    failures = (results.get("activeManifest") or {}).get("failure") or []
    codes = [str(f.get("code")) for f in failures if isinstance(f, dict)]
    verdict.codes = codes
    tampering = [TAMPERING[c] for c in codes if c in TAMPERING]
    other = [c for c in codes if c not in TAMPERING and c != UNTRUSTED_CODE]
    if trusted:
        verdict.trusted = UNTRUSTED_CODE not in codes and state == "Trusted"
    if tampering:
        verdict.status, verdict.reasons = TAMPERED, list(dict.fromkeys(tampering))
    elif other:
        verdict.status, verdict.reasons = INVALID, [f"the manifest does not validate: {', '.join(other)}"]
    elif trusted and not verdict.trusted:
        verdict.status, verdict.reasons = UNTRUSTED, ["the signer is not on the trust list given"]
    else:
        verdict.status = VALID


def _unsigned(path: Path, verdict: Verdict) -> Verdict:
    """No manifest: unsigned, unless the file's own record says it was signed (then it was stripped)."""
    record = _embedded(path, None, Budget())
    said = [p for p in (record.provenance.embedding if record else []) if p.target == TARGET]
    if any(p.status == "written" for p in said):
        verdict.status = TAMPERED
        verdict.reasons = ["the C2PA manifest was removed: the file's own record says it was signed"]
    return verdict


def _embedded(path: Path, found: Embedded | None, budget: Budget) -> Record | None:
    """The record the file itself embeds (not a sidecar's, not one rebuilt from ComfyUI's graph), from what
    `extract` found already (`found`, read within `budget`), else read now."""
    from ..read import Source, from_record

    try:
        return from_record(Source(path=path, found=found or extract(path, budget), budget=budget))
    except (MetadataError, OSError):
        return None


def _compare_record(verdict: Verdict, active: dict[str, Any], record: Record | None) -> None:
    """The record signed into the manifest against `record`, the one the file embeds (None: it embeds none)."""
    body = signed.find(active, signed.RECORD_LABEL)
    if not isinstance(body, dict):
        verdict.record = "not in the manifest (signed by another tool)"
        return
    text = body.get("record")
    theirs: dict[str, Any] | None = None
    if isinstance(text, str):
        try:
            theirs = Record.from_json(text).to_dict()
        except ValueError:
            verdict.record = "damaged in the manifest"
            _tampered(verdict, "the record in the manifest does not read")
            return
    if record is None:
        if theirs is not None and not _embeds_record(theirs):
            verdict.record = "in the manifest only"  # the c2pa target alone: nothing else to agree with
            return
        verdict.record = "missing from the file"
        _tampered(verdict, "the file no longer embeds the record it was signed with")
        return
    ours = record.to_dict()
    if theirs is not None:
        changes = differences(theirs, ours)
    else:
        changes = [] if signed.canonical_digest(ours) == body.get("sha256") else ["the record (its digest differs)"]
    if changes:
        verdict.record = "differs"
        more = len(changes) - DIFFS_SHOWN
        shown = ", ".join(changes[:DIFFS_SHOWN]) + (f" and {more} more" if more > 0 else "")
        _tampered(verdict, f"the embedded record differs from the signed one: {shown}")
    else:
        verdict.record = "agrees"


def _embeds_record(record: dict[str, Any]) -> bool:
    """The signed record says it was also written into the file (target record, or XMP's cprov:Record)."""
    placements = (record.get("provenance") or {}).get("embedding") or []
    return any(
        isinstance(p, dict)
        and p.get("target") in ("record", "xmp")
        and p.get("status") == "written"
        and not str(p.get("location", "")).startswith("sidecar:")
        for p in placements
    )


def _tampered(verdict: Verdict, reason: str) -> None:
    if verdict.status in (VALID, UNTRUSTED, INVALID):
        verdict.status = TAMPERED
    verdict.reasons.append(reason)


def differences(signed_value: Any, embedded: Any) -> list[str]:
    """The paths (`generation.seed`) where two JSON values differ: iterative, bounded, in document order."""
    found: list[str] = []
    stack: list[tuple[str, Any, Any]] = [("", signed_value, embedded)]
    visited = 0
    while stack and visited < DIFF_NODES_MAX and len(found) <= DIFFS_SHOWN * 4:
        where, a, b = stack.pop()
        visited += 1
        if isinstance(a, dict) and isinstance(b, dict):
            keys = list(dict.fromkeys([*a, *b]))
            stack.extend((f"{where}.{k}" if where else str(k), a.get(k), b.get(k)) for k in reversed(keys))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            stack.extend((f"{where}[{i}]", a[i], b[i]) for i in reversed(range(len(a))))
        elif a != b or type(a) is not type(b):
            found.append(where or "the record")
    return found


__all__ = ["INVALID", "LIBRARY_MISSING", "TAMPERED", "UNSIGNED", "UNTRUSTED", "VALID", "Verdict", "verify_file"]
