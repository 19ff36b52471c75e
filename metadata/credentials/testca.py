"""`provenance c2pa init`: a local test CA and a signing certificate C2PA validators accept the shape of.

The end-entity certificate has what the C2PA specification's certificate profile asks of a signer
(ES256 on P-256, issued by a CA rather than self-signed, digitalSignature key usage, the document-
signing extended key usage plus emailProtection, a subject key identifier and the issuer's authority
key identifier). Both certificates say UNTRUSTED TEST in their names: a validator shows that name,
and no trust list holds this CA, so a file signed with it proves only that it did not change since it
was signed by whoever held this key. Needs `cryptography` (which c2pa-python requires).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import files
from .signer import CredentialError

# Every certificate it makes carries this in its organisation, so the pack (and a person) can tell.
TEST_MARK = "UNTRUSTED TEST"
ORGANISATION = f"ComfyUI Provenance {TEST_MARK} credentials"
CA_NAME = f"ComfyUI Provenance {TEST_MARK} CA"
# id-kp-documentSigning (RFC 9336); C2PA's profile accepts it, emailProtection, and a few more.
DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"
CA_DAYS = 3650
SIGNER_DAYS = 825
CHAIN_FILE, KEY_FILE, CA_FILE, CA_KEY_FILE = "signer-chain.pem", "signer-key.pem", "test-ca.pem", "test-ca-key.pem"


@dataclass(frozen=True)
class TestCredentials:
    chain: Path  # the signer's certificate, then the CA's (what PROVENANCE_C2PA_CERT names)
    key: Path  # the signer's private key (PROVENANCE_C2PA_KEY)
    ca: Path  # the test CA's certificate: a trust anchor for `provenance verify --trust`
    ca_key: Path


SIGNER_NAME = "ComfyUI Provenance test signer"


def create(folder: Path, *, signer_name: str = SIGNER_NAME, force: bool = False) -> TestCredentials:
    """Write a new test CA and signing certificate into `folder`; CredentialError if they exist (unless `force`)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
    except ImportError as err:
        raise CredentialError(
            "making test credentials needs `cryptography` (pip install 'comfyui-provenance[c2pa]')"
        ) from err
    made = TestCredentials(folder / CHAIN_FILE, folder / KEY_FILE, folder / CA_FILE, folder / CA_KEY_FILE)
    existing = [p.name for p in (made.chain, made.key, made.ca, made.ca_key) if p.exists()]
    if existing and not force:
        raise CredentialError(f"{folder} already holds {', '.join(existing)} (--force replaces them)")
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = now - dt.timedelta(hours=1)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"{common} ({TEST_MARK})"[:64]),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION[:64]),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(CA_NAME)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(signer_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=SIGNER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ObjectIdentifier(DOCUMENT_SIGNING), ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8, plain = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    # The keys are readable by their owner only; the certificates are public.
    _write(made.ca_key, ca_key.private_bytes(pem, pkcs8, plain), secret=True)
    _write(made.key, key.private_bytes(pem, pkcs8, plain), secret=True)
    _write(made.ca, ca.public_bytes(pem), secret=False)
    _write(made.chain, cert.public_bytes(pem) + ca.public_bytes(pem), secret=False)
    return made


def _usage(**on: bool) -> Any:
    """x509.KeyUsage with only the named uses on."""
    from cryptography import x509

    names = [
        *("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
        *("key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
    ]
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    files.replace_with(path, lambda handle: handle.write(data), mode=0o600 if secret else 0o644, durable=True)
