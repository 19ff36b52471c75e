"""Signing: the signer's credentials, checked once, and the seal a save puts on its final bytes.

`plan()` runs while a save plans its targets: it decides whether this file can be signed (the
c2pa-python library installed, credentials configured and sound, a container C2PA can bind) and
records the decision as the `c2pa` placement, so the record the file embeds says whether it was
signed and, if not, why. The `Seal` it returns wraps the save's encode: the file is encoded with
every other target into a spooled buffer, then c2pa-python writes the signed copy (the manifest
where C2PA puts it: PNG `caBX`, JPEG APP11, WEBP `C2PA`, ISO BMFF `uuid`) into the staged file.
Signing is the very last write, so the manifest's hard binding covers the final bytes. A failure
to sign is a SealError: the save encodes again without a manifest and its record says why
(a missing credential never fails a save).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import MetadataError
from ..limits import MIB
from ..record import Placement, Record

logger = logging.getLogger(__name__)

TARGET = "c2pa"
INSTALL = "pip install 'comfyui-provenance[c2pa]'"
LIBRARY_MISSING = f"c2pa-python is not installed ({INSTALL})"
NO_CREDENTIALS = (
    "no signing certificate: set c2pa_cert and c2pa_key in the settings, PROVENANCE_C2PA_CERT and "
    "PROVENANCE_C2PA_KEY, or run `provenance c2pa init` for test credentials"
)
# A PEM chain or key larger than this is not one (a chain of a few certificates is a few KB).
PEM_MAX_BYTES = 1 * MIB
# The encoded file waits in memory up to this size before it is signed, on disk beyond.
SPOOL_MAX_BYTES = 64 * MIB
# An input image read as an ingredient (its hash, its own credentials) only up to this size.
INGREDIENT_MAX_BYTES = 256 * MIB
# The containers c2pa-python binds a manifest to, by our format names, and where the manifest goes.
MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
}
LOCATIONS = {
    "png": "png:caBX",
    "jpeg": "jpeg:APP11",
    "webp": "webp:C2PA",
    "gif": "gif:C2PA",
    "mp4": "mp4:uuid",
    "mov": "mov:uuid",
    "flac": "flac:c2pa",
    "mp3": "mp3:c2pa",
}
# Containers c2pa-python signs in a way that costs a reader we promise: left unsigned, with the reason.
BREAKS = {
    "flac": "C2PA's FLAC embedding puts an ID3 tag before the fLaC marker, and ComfyUI's frontend then loads "
    "no workflow from the file (drag-and-drop lost)",
}
# Signature algorithms C2PA allows, by key: EC curve size, RSA (PSS only), Ed25519.
EC_ALGS = {256: "es256", 384: "es384", 521: "es512"}


class CredentialError(MetadataError):
    """Credentials that cannot sign: missing, unreadable, mismatched, self-signed or expired (one line)."""


class SealError(MetadataError):
    """c2pa-python could not sign this file: the save goes on without a manifest."""


def library_missing() -> str | None:
    """Why signing or verifying is impossible here (None: c2pa-python imports; it is imported once)."""
    try:
        import c2pa  # noqa: F401 - what is asked is whether it imports
    except ImportError:
        return LIBRARY_MISSING
    except Exception as err:  # its native library failed to load: the same answer, with the cause
        return f"c2pa-python does not load ({' '.join(str(err).split())[:200]})"
    return None


@dataclass(frozen=True)
class Credentials:
    """A signer's certificate chain and key, as c2pa-python takes them, with what a person needs to see."""

    chain: bytes = field(repr=False)  # PEM: end-entity first, then intermediates
    key: bytes = field(repr=False)  # PEM, unencrypted; never logged, never written anywhere
    alg: str
    subject: str
    issuer: str
    not_after: str
    test: bool  # made by `provenance c2pa init`: untrusted by design
    tsa_url: str | None = None
    cert_path: Path | None = None

    def describe(self) -> str:
        marked = " (untrusted test certificate)" if self.test else ""
        return f"{self.subject}, issued by {self.issuer}{marked}"


_cache: dict[tuple[Any, ...], Credentials] = {}
_cache_lock = threading.Lock()


def configured(cert: Path | None = None, key: Path | None = None, tsa_url: str | None = None) -> Credentials:
    """The credentials named by the arguments, else by the settings (file, PROVENANCE_C2PA_*, per-run options).

    CredentialError, one line, when none are configured or they cannot sign.
    """
    from .. import settings

    current = settings.current()
    cert = cert or current.c2pa_cert
    key = key or current.c2pa_key
    if cert is None and key is None:
        raise CredentialError(NO_CREDENTIALS)
    if cert is None or key is None:
        missing = "certificate (c2pa_cert)" if cert is None else "private key (c2pa_key)"
        raise CredentialError(f"the signing {missing} is not set; both are needed")
    return load(cert, key, tsa_url or current.c2pa_tsa_url)


def load(cert: Path, key: Path, tsa_url: str | None = None) -> Credentials:
    """Read and check a PEM chain and key; cached until either file changes."""
    stamp = (_stamp(cert), _stamp(key), tsa_url)
    with _cache_lock:
        found = _cache.get((cert, key, stamp))
    if found is not None:
        return found
    loaded = _check(_read_pem(cert, "certificate"), _read_pem(key, "private key"), tsa_url, cert)
    with _cache_lock:
        _cache[(cert, key, stamp)] = loaded
    return loaded


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _read_pem(path: Path, what: str) -> bytes:
    from ..budget import open_regular
    from ..errors import ReadError

    try:
        with open_regular(path) as fp:
            data = fp.read(PEM_MAX_BYTES + 1)
    except ReadError as err:
        raise CredentialError(f"the signing {what} {path}: {err}") from None
    except OSError as err:
        raise CredentialError(f"the signing {what} {path}: {err.strerror or err}") from None
    if len(data) > PEM_MAX_BYTES:
        raise CredentialError(f"the signing {what} {path} is over {PEM_MAX_BYTES:,} bytes: not a PEM file")
    if b"-----BEGIN" not in data:
        raise CredentialError(f"the signing {what} {path} is not PEM (no -----BEGIN line)")
    return data


def _check(chain: bytes, key_pem: bytes, tsa_url: str | None, cert_path: Path) -> Credentials:
    """What C2PA validators refuse, refused here first, in words."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    except ImportError as err:
        raise CredentialError(LIBRARY_MISSING) from err
    import datetime as dt

    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError as err:
        raise CredentialError(
            f"the signing certificate {cert_path} does not read as PEM certificates ({err})"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CredentialError("the signing key is encrypted: give an unencrypted PEM key (keep it private)") from None
    except ValueError:
        raise CredentialError("the signing key does not read as a PEM private key") from None
    leaf = certs[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != leaf.public_key().public_bytes(der, public):
        raise CredentialError("the signing key does not belong to the first certificate of the chain")
    if leaf.issuer == leaf.subject:
        raise CredentialError(
            "the signing certificate is self-signed, which C2PA validators refuse; use one issued by a CA "
            "(`provenance c2pa init` makes a test CA and signer)"
        )
    now = dt.datetime.now(dt.timezone.utc)
    if leaf.not_valid_after_utc < now:
        raise CredentialError(f"the signing certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.not_valid_before_utc > now:
        raise CredentialError(f"the signing certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = EC_ALGS.get(key.curve.key_size)
        if alg is None:
            raise CredentialError(f"the signing key's curve {key.curve.name} is not one C2PA allows (P-256/384/521)")
    elif isinstance(key, rsa.RSAPrivateKey):
        alg = "ps256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "ed25519"
    else:
        raise CredentialError(f"the signing key type {type(key).__name__} is not one C2PA allows")
    from .testca import TEST_MARK

    def name(n: x509.Name) -> str:
        common = n.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(common[0].value) if common else n.rfc4514_string()

    return Credentials(
        chain=chain,
        key=key_pem,
        alg=alg,
        subject=name(leaf.subject),
        issuer=name(leaf.issuer),
        not_after=f"{leaf.not_valid_after_utc:%Y-%m-%d}",
        test=TEST_MARK in leaf.subject.rfc4514_string() or TEST_MARK in leaf.issuer.rfc4514_string(),
        tsa_url=tsa_url,
        cert_path=cert_path,
    )


# -- the save's side ---------------------------------------------------------------------------------------------------
# (ComfyUI's input image name) -> its file, or None; set at pack load (the library never asks ComfyUI).
InputResolver = Callable[[str], Path | None]


class _Inputs:
    resolve: InputResolver | None = None


def set_input_resolver(resolve: InputResolver | None) -> None:
    """How an input image's name (LoadImage's `image`) becomes its file, for the manifest's ingredients."""
    _Inputs.resolve = resolve


@dataclass
class Seal:
    """One file's signature to be: who signs, what the manifest says (built from the final record)."""

    credentials: Credentials
    record: Record
    fmt: str
    placement: Placement
    # Decided once, when the save plans: the manifest holds the record whole, or its digest (and the plan
    # then writes the JSON sidecar that holds it).
    inline: bool = True

    @property
    def mime(self) -> str:
        return MIME[self.fmt]

    def wrap(self, write: Callable[[BinaryIO], Any]) -> Callable[[BinaryIO], None]:
        """`write` (the encode of every other target) into a buffer, then the signed copy into the real file."""

        def sealed(fp: BinaryIO) -> None:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as buffer:
                write(buffer)  # type: ignore[arg-type]
                buffer.seek(0)
                self.sign(buffer, fp)  # type: ignore[arg-type]

        return sealed

    def sign(self, source: BinaryIO, dest: BinaryIO) -> None:
        """Sign `source` (the finished file) into `dest`; SealError in words when c2pa-python refuses."""
        from .manifest import definition

        try:
            import c2pa
        except ImportError as err:
            raise SealError(LIBRARY_MISSING) from err
        ingredients, listed = _ingredients(self.record)
        manifest = definition(self.record, self.mime, inline=self.inline, ingredients=listed)
        creds = self.credentials
        try:
            info = c2pa.C2paSignerInfo(
                alg=creds.alg.encode(),
                sign_cert=creds.chain,
                private_key=creds.key,
                ta_url=creds.tsa_url.encode() if creds.tsa_url else None,
            )
            with (
                c2pa.Context.from_dict(CONTEXT) as context,
                c2pa.Signer.from_info(info) as signer,
                c2pa.Builder(manifest, context) as builder,
            ):
                for spec, path, mime in ingredients:
                    with path.open("rb") as stream:
                        builder.add_ingredient(spec, mime, stream)
                builder.sign(signer, self.mime, source, dest)
        except c2pa.C2paError as err:
            raise SealError(f"c2pa-python could not sign: {' '.join(str(err).split())}") from err
        except OSError as err:
            raise SealError(f"signing failed: {err.strerror or err}") from err

    def failed(self, err: Exception) -> None:
        """The record says the file was not signed, and why (the save then encodes without a manifest)."""
        self.placement.status, self.placement.reason = "failed", _short(str(err))
        self.record.warn(_short(f"not signed: {err}"))


# c2pa-python's settings for signing: no thumbnail (the file is its own picture, and encoding one
# costs more than the signature).
CONTEXT = {"builder": {"thumbnail": {"enabled": False}}}


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan(record: Record, placements: list[Placement], fmt: str) -> Seal | None:
    """Decide whether this file is signed; the `c2pa` placement says so (or why not). The Seal, or None."""
    location = LOCATIONS.get(fmt, f"{fmt}:c2pa")
    placement = Placement(target=TARGET, location=location, status="written")
    placements.append(placement)
    why: str | None
    if fmt not in MIME:
        signable = ", ".join(f for f in MIME if f not in BREAKS)
        why = f"C2PA defines no way to embed a manifest in {fmt.upper()} files (signable: {signable})"
    elif fmt in BREAKS:
        why = BREAKS[fmt]
    else:
        why = library_missing()
    credentials = None
    if why is None:
        try:
            credentials = configured()
        except CredentialError as err:
            why = str(err)
    if why is not None or credentials is None:
        placement.status, placement.reason = "omitted", _short(why or NO_CREDENTIALS)
        record.warn(_short(f"not signed: {placement.reason}"))
        logger.info("provenance: %s not signed: %s", record.image.filename or "file", placement.reason)
        return None
    if credentials.test:
        placement.reason = "signed with an untrusted test certificate"
    from .manifest import fits_inline

    return Seal(credentials=credentials, record=record, fmt=fmt, placement=placement, inline=fits_inline(record))


def _ingredients(record: Record) -> tuple[list[tuple[dict[str, Any], Path, str]], list[dict[str, Any]]]:
    """The input images the graph loaded: those that carry Content Credentials of their own (and that our
    budgeted readers read soundly) as streams c2pa-python reads, so their manifests come along; every other
    one listed by name, with its sha256 when its file was found. c2pa-python never parses an input that
    has no manifest store: an uploaded image is hostile until proven otherwise."""
    from ..budget import Budget
    from ..read import extract
    from .locate import has_manifest
    from .manifest import ingredient_spec

    streamed, listed = [], []
    for name in record.generation.input_images or []:
        path = _resolve(name)
        fmt = _format_of(path) if path is not None else ""
        mime = MIME.get(fmt)
        if path is None or mime is None:
            listed.append({"title": name, "relationship": "inputTo"})
            continue
        spec = ingredient_spec(name, mime, _sha256(path))
        try:
            carries = has_manifest(path, fmt)
            if carries:
                extract(path, Budget())
        except (MetadataError, OSError):
            carries = False
        if carries:
            streamed.append((spec, path, mime))
        else:
            listed.append(spec)
    return streamed, listed


def _resolve(name: str) -> Path | None:
    resolve = _Inputs.resolve
    if resolve is None:
        return None
    try:
        path = resolve(name)
        if path is None or not path.is_file() or path.stat().st_size > INGREDIENT_MAX_BYTES:
            return None
    except (OSError, ValueError):
        return None
    return path


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "jpeg"}.get(suffix, suffix)


def _sha256(path: Path) -> str:
    from ..hashing.digest import digest

    with path.open("rb") as fp:
        return digest(fp).sha256
