"""Content Credentials: signed saves in every container C2PA binds, verified, and every tampering named.

Real c2pa-python signs and verifies (the `c2pa` extra is part of `test`); the credentials are made
by `provenance c2pa init`'s own code, so the test CA is a real CA and the signer a real end-entity
certificate with the profile validators require.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import context_for, pixels
from PIL import Image

from comfyui_provenance.cli.main import main as cli
from comfyui_provenance.metadata import settings
from comfyui_provenance.metadata.credentials import manifest, signer, testca
from comfyui_provenance.metadata.credentials.verify import INVALID, TAMPERED, UNSIGNED, UNTRUSTED, VALID, verify_file
from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS, AudioClip, MediaOptions
from comfyui_provenance.metadata.media import clip_from, save_audio, save_video
from comfyui_provenance.metadata.read import read
from comfyui_provenance.metadata.record import COMPOSITE, TRAINED, Record
from comfyui_provenance.metadata.save import SavedFile, SaveOptions, save_images

c2pa = pytest.importorskip("c2pa", reason="c2pa-python is not installed (pip install -e '.[test]')")

SIGNED = DEFAULT_TARGETS | {"c2pa"}


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> testca.TestCredentials:
    return testca.create(tmp_path_factory.mktemp("c2pa") / "credentials")


@pytest.fixture
def signing(creds: testca.TestCredentials) -> Iterator[testca.TestCredentials]:
    with settings.override(c2pa_cert=creds.chain, c2pa_key=creds.key):
        yield creds


def save(folder: Path, fmt: str, name: str = "default", *, seed: int | None = None, **options: Any) -> SavedFile:
    context = context_for(name)
    if seed is not None:
        for node in (context.prompt or {}).values():
            if isinstance(node, dict) and "seed" in node.get("inputs", {}):
                node["inputs"]["seed"] = seed
    opts = SaveOptions(format=fmt, targets=options.pop("targets", SIGNED), **options)
    return save_images([pixels()], context, folder, "img", opts, version="test")[0]


def placement(record: Record | None) -> Any:
    assert record is not None
    (found,) = [p for p in record.provenance.embedding if p.target == "c2pa"]
    return found


def frames(count: int = 6, size: int = 64) -> Any:
    rng = np.random.default_rng(3)
    return rng.random((count, size, size, 3), dtype=np.float32)


# -- signing ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "location"), [("png", "png:caBX"), ("jpeg", "jpeg:APP11"), ("webp", "webp:C2PA")])
def test_signed_image_verifies_and_carries_the_record(
    signing: testca.TestCredentials, tmp_path: Path, fmt: str, location: str
) -> None:
    saved = save(tmp_path, fmt, "lora")
    where = placement(saved.record)
    assert (where.location, where.status) == (location, "written")
    assert where.reason == "signed with an untrusted test certificate"
    verdict = verify_file(saved.path, signing.ca)
    assert (verdict.status, verdict.record, verdict.trusted, verdict.test_certificate) == (VALID, "agrees", True, True)
    assert verdict.signer == "ComfyUI Provenance test signer (UNTRUSTED TEST)"
    # Without a trust list it is still valid (intact), and says nobody vouched for the signer.
    alone = verify_file(saved.path)
    assert (alone.status, alone.trusted) == (VALID, None)
    assert "an untrusted test certificate" in alone.line()
    # What the manifest says, as an independent C2PA reader (c2pa-python's own) reports it.
    with c2pa.Reader(str(saved.path)) as reader:
        active = json.loads(reader.json())
        active = active["manifests"][active["active_manifest"]]
    assert active["claim_generator_info"][0]["name"] == "ComfyUI Provenance"
    assert active["claim_generator_info"][0]["version"] == "test"
    (action,) = manifest.find(active, "c2pa.actions.v2")["actions"]
    assert (action["action"], action["digitalSourceType"]) == ("c2pa.created", TRAINED)
    assert action["softwareAgent"]["name"] == "ComfyUI"
    models = manifest.find(active, manifest.MODELS_LABEL)["models"]
    record = saved.record
    assert record is not None
    assert [(m["role"], m["name"]) for m in models] == [(m.role, m.name) for m in record.models]
    lora = next(m for m in models if m["role"] == "lora")
    assert lora["strength_model"] == next(m for m in record.models if m.role == "lora").strength_model
    body = manifest.find(active, manifest.RECORD_LABEL)
    assert json.loads(body["record"]) == record.to_dict() == read(saved.path).to_dict()
    assert body["sha256"] == manifest.canonical_digest(record.to_dict())


@pytest.mark.parametrize(
    ("fmt", "suffix", "location"),
    [
        ("mp4", ".mp4", "mp4:uuid"),
        ("gif", ".gif", "gif:C2PA"),
        ("webp", ".webp", "webp:C2PA"),
        ("apng", ".png", "png:caBX"),
    ],
)
def test_signed_video_verifies(
    signing: testca.TestCredentials, tmp_path: Path, fmt: str, suffix: str, location: str
) -> None:
    saved = save_video(
        clip_from(frames(), 8),
        context_for("default"),
        tmp_path,
        "v",
        MediaOptions(format=fmt, targets=SIGNED),
        version="t",
    )
    assert saved.path.suffix == suffix
    assert (placement(saved.record).location, placement(saved.record).status) == (location, "written")
    verdict = verify_file(saved.path, signing.ca)
    assert (verdict.status, verdict.record) == (VALID, "agrees"), verdict.line()


def sound() -> AudioClip:
    return AudioClip(np.sin(np.linspace(0, 400, 2 * 22050, dtype=np.float32)).reshape(2, -1) * 0.2, 22050)


def test_signed_mp3_verifies(signing: testca.TestCredentials, tmp_path: Path) -> None:
    options = MediaOptions(format="mp3", targets=SIGNED)
    saved = save_audio(sound(), context_for("default"), tmp_path, "a", options, version="t")
    assert placement(saved.record).status == "written"
    verdict = verify_file(saved.path, signing.ca)
    assert (verdict.status, verdict.record) == (VALID, "agrees"), verdict.line()


def test_flac_is_left_unsigned_so_comfyui_still_loads_it(signing: testca.TestCredentials, tmp_path: Path) -> None:
    """C2PA's FLAC embedding puts an ID3 tag before `fLaC`; ComfyUI's frontend then loads nothing from the file."""
    options = MediaOptions(format="flac", targets=SIGNED)
    saved = save_audio(sound(), context_for("default"), tmp_path, "a", options, version="t")
    where = placement(saved.record)
    assert where.status == "omitted" and "ComfyUI's frontend" in where.reason
    assert saved.path.read_bytes()[:4] == b"fLaC"
    assert verify_file(saved.path).status == UNSIGNED


@pytest.mark.parametrize("fmt", ["webm", "mkv"])
def test_containers_c2pa_cannot_bind_are_saved_unsigned_and_say_why(
    signing: testca.TestCredentials, tmp_path: Path, fmt: str
) -> None:
    options = MediaOptions(format=fmt, targets=SIGNED)
    saved = save_video(clip_from(frames(3), 8), context_for("default"), tmp_path, "v", options, version="t")
    where = placement(saved.record)
    assert where.status == "omitted" and f"no way to embed a manifest in {fmt.upper()}" in where.reason
    assert read(saved.path).to_dict() == saved.record.to_dict()  # type: ignore[union-attr]
    verdict = verify_file(saved.path)
    assert verdict.status == UNSIGNED and f"no manifest for {fmt.upper()}" in verdict.reasons[0]


def test_opus_is_saved_unsigned(signing: testca.TestCredentials, tmp_path: Path) -> None:
    sound = AudioClip(np.zeros((1, 4800), np.float32), 48000)
    saved = save_audio(sound, context_for("default"), tmp_path, "a", MediaOptions(format="opus", targets=SIGNED))
    assert placement(saved.record).status == "omitted"
    assert verify_file(saved.path).status == UNSIGNED


def test_img2img_is_a_composite_with_its_input_as_an_ingredient(
    signing: testca.TestCredentials, tmp_path: Path
) -> None:
    source = tmp_path / "inputs" / "photo.png"
    source.parent.mkdir()
    save(source.parent, "png").path.rename(source)  # itself a signed file: its credentials come along
    context = context_for("default")
    prompt = context.prompt or {}
    prompt["90"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}
    prompt["91"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["90", 0], "vae": ["4", 2]}}
    sampler = next(n for n in prompt.values() if n.get("class_type") == "KSampler")
    sampler["inputs"]["latent_image"], sampler["inputs"]["denoise"] = ["91", 0], 0.6
    signer.set_input_resolver(lambda name: source.parent / name)
    try:
        opts = SaveOptions(format="png", targets=SIGNED)
        saved = save_images([pixels()], context, tmp_path, "img", opts, version="t")[0]
    finally:
        signer.set_input_resolver(None)
    record = saved.record
    assert record is not None and record.generation.input_images == ["photo.png"]
    assert record.provenance.digital_source_type == COMPOSITE
    assert verify_file(saved.path, signing.ca).status == VALID
    with c2pa.Reader(str(saved.path)) as reader:
        active = reader.get_active_manifest()
    (action,) = manifest.find(active, "c2pa.actions.v2")["actions"]
    assert action["digitalSourceType"] == COMPOSITE
    (ingredient,) = active["ingredients"]
    assert (ingredient["title"], ingredient["relationship"]) == ("photo.png", "inputTo")
    import hashlib

    assert ingredient["metadata"][manifest.SHA256_KEY] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert ingredient["active_manifest"] != active["label"]  # the input's own manifest, kept in the store


def test_a_large_record_is_signed_by_its_digest_and_kept_in_the_sidecar(
    signing: testca.TestCredentials, tmp_path: Path
) -> None:
    context = context_for("default")
    for node in (context.prompt or {}).values():
        if node.get("class_type") == "CLIPTextEncode":
            node["inputs"]["text"] = "a lighthouse at dusk, " * 20_000  # ~440 KB of prompt
            break
    saved = save_images([pixels()], context, tmp_path, "big", SaveOptions(format="png", targets=SIGNED), version="t")[0]
    assert saved.path.with_name(saved.path.name + ".json") in saved.sidecars
    with c2pa.Reader(str(saved.path)) as reader:
        body = manifest.find(reader.get_active_manifest(), manifest.RECORD_LABEL)
    assert "record" not in body and body["sidecar"] == saved.path.name + ".json"
    assert body["bytes"] > manifest.RECORD_INLINE_MAX
    verdict = verify_file(saved.path, signing.ca)
    assert (verdict.status, verdict.record) == (VALID, "agrees")


def test_the_c2pa_target_alone_carries_the_record_in_the_manifest(
    signing: testca.TestCredentials, tmp_path: Path
) -> None:
    saved = save(tmp_path, "png", targets=frozenset({"c2pa"}))
    chunks = {t for t, _ in png_chunks(saved.path.read_bytes())}
    assert b"caBX" in chunks and not chunks & {b"tEXt", b"iTXt", b"zTXt"}  # nothing else embedded
    assert read(saved.path).to_dict() == saved.record.to_dict()  # type: ignore[union-attr]
    assert verify_file(saved.path, signing.ca).status == VALID


# -- not signing, never failing --------------------------------------------------------------------------------------
def test_without_credentials_the_save_succeeds_and_says_why(tmp_path: Path) -> None:
    saved = save(tmp_path, "png")
    where = placement(saved.record)
    assert (where.status, where.reason) == ("omitted", signer.NO_CREDENTIALS)
    assert f"not signed: {signer.NO_CREDENTIALS}" in saved.record.provenance.warnings  # type: ignore[union-attr]
    assert Image.open(saved.path).size == (pixels().shape[1], pixels().shape[0])
    assert verify_file(saved.path).status == UNSIGNED


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / "key.pem").write_bytes(pem)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    (folder / "encrypted.pem").write_bytes(encrypted)
    return folder / "cert.pem", folder / "key.pem"


def test_credentials_that_cannot_sign_are_named_in_one_line(creds: testca.TestCredentials, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path / "self")
    other = testca.create(tmp_path / "other")
    cases = {
        "self-signed, which C2PA validators refuse": (cert, key),
        "does not belong to the first certificate": (creds.chain, other.key),
        "the signing key is encrypted": (creds.chain, tmp_path / "self" / "encrypted.pem"),
        "no such file": (tmp_path / "missing.pem", creds.key),
        "is not PEM": (creds.chain, _text(tmp_path / "note.txt", "hello")),
        "the signing private key (c2pa_key) is not set": (creds.chain, None),
    }
    for reason, (chain, private) in cases.items():
        with settings.override(c2pa_cert=chain, c2pa_key=private):
            saved = save(tmp_path / "out", "png")
        where = placement(saved.record)
        assert where.status == "omitted" and reason in where.reason, (reason, where.reason)
        assert "\n" not in where.reason


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_signature_that_fails_leaves_the_file_unsigned_and_every_copy_of_the_record_agreeing(
    signing: testca.TestCredentials, tmp_path: Path
) -> None:
    """A time-stamp authority that does not answer makes c2pa-python fail to sign: a real failure."""
    with settings.override(c2pa_tsa_url="http://127.0.0.1:9/"):
        saved = save(tmp_path, "png", targets=SIGNED | {"sidecar_json"})
    where = placement(saved.record)
    assert where.status == "failed" and "could not sign" in where.reason
    assert read(saved.path).to_dict() == saved.record.to_dict()  # type: ignore[union-attr]
    sidecar = json.loads(saved.path.with_name(saved.path.name + ".json").read_text())
    assert sidecar == saved.record.to_dict()  # type: ignore[union-attr]
    assert verify_file(saved.path).status == UNSIGNED  # nothing claims a signature that is not there
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- tampering -------------------------------------------------------------------------------------------------------
def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]))
        pos += 12 + size
    return out


def png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF) for t, d in chunks
    )
    return b"\x89PNG\r\n\x1a\n" + body


def one_pixel_changed(data: bytes) -> bytes:
    """The same PNG, every chunk kept (metadata and manifest), with one pixel of its image data changed."""
    image = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    image[5, 7, 0] ^= 0x40
    rows = b"".join(b"\x00" + row.tobytes() for row in image)
    chunks = [(t, d) for t, d in png_chunks(data)]
    first = next(i for i, (t, _) in enumerate(chunks) if t == b"IDAT")
    chunks = [c for c in chunks if c[0] != b"IDAT"]
    chunks.insert(first, (b"IDAT", zlib.compress(rows)))
    return png_bytes(chunks)


def test_one_pixel_changed_is_tampered(signing: testca.TestCredentials, tmp_path: Path) -> None:
    saved = save(tmp_path, "png")
    changed = tmp_path / "changed.png"
    changed.write_bytes(one_pixel_changed(saved.path.read_bytes()))
    assert np.array(Image.open(changed)).tolist() != np.array(Image.open(saved.path)).tolist()
    assert read(changed).to_dict() == saved.record.to_dict()  # type: ignore[union-attr]  # metadata untouched
    verdict = verify_file(changed, signing.ca)
    assert verdict.status == TAMPERED and verdict.record == "agrees"
    assert verdict.reasons == ["the file's bytes changed after signing (pixels or metadata)"]
    assert "assertion.dataHash.mismatch" in verdict.codes


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_image_data_changed_is_tampered(signing: testca.TestCredentials, tmp_path: Path, fmt: str) -> None:
    saved = save(tmp_path, fmt)
    data = bytearray(saved.path.read_bytes())
    start = data.find(b"\xff\xda") + 40 if fmt == "jpeg" else data.find(b"VP8") + 60
    data[start] ^= 0x10
    changed = tmp_path / f"changed{saved.path.suffix}"
    changed.write_bytes(bytes(data))
    verdict = verify_file(changed, signing.ca)
    assert verdict.status == TAMPERED and "changed after signing" in verdict.reasons[0]


def test_one_metadata_byte_changed_is_tampered_and_the_field_named(
    signing: testca.TestCredentials, tmp_path: Path
) -> None:
    saved = save(tmp_path, "png")
    record = saved.record
    assert record is not None and record.generation.seed is not None
    chunks = png_chunks(saved.path.read_bytes())
    seed = f'"seed":{record.generation.seed}'.encode()
    edited = []
    for ctype, data in chunks:
        body = data
        if ctype == b"iTXt" and data.startswith(b"comfyui_provenance\x00"):
            assert data.count(seed) >= 1
            body = data.replace(seed, seed[:-1] + bytes([seed[-1] ^ 1]))  # one digit of the seed
        edited.append((ctype, body))
    changed = tmp_path / "changed.png"
    changed.write_bytes(png_bytes(edited))
    verdict = verify_file(changed, signing.ca)
    assert verdict.status == TAMPERED and verdict.record == "differs"
    assert verdict.reasons[0] == "the file's bytes changed after signing (pixels or metadata)"
    assert "generation.seed" in verdict.reasons[1] and verdict.reasons[1].startswith("the embedded record differs")


def test_a_stripped_manifest_is_tampered_not_unsigned(signing: testca.TestCredentials, tmp_path: Path) -> None:
    saved = save(tmp_path, "png")
    stripped = tmp_path / "stripped.png"
    stripped.write_bytes(png_bytes([c for c in png_chunks(saved.path.read_bytes()) if c[0] != b"caBX"]))
    verdict = verify_file(stripped, signing.ca)
    assert verdict.status == TAMPERED
    assert verdict.reasons == ["the C2PA manifest was removed: the file's own record says it was signed"]
    # An unsigned save is only unsigned.
    plain = save(tmp_path, "png", targets=DEFAULT_TARGETS)
    assert (verify_file(plain.path).status, verify_file(plain.path).reasons) == (UNSIGNED, [])


def test_a_manifest_transplanted_from_another_file_is_tampered(signing: testca.TestCredentials, tmp_path: Path) -> None:
    first, second = save(tmp_path, "png", seed=1), save(tmp_path, "png", seed=2)
    (theirs,) = [d for t, d in png_chunks(first.path.read_bytes()) if t == b"caBX"]
    chunks = [(t, theirs if t == b"caBX" else d) for t, d in png_chunks(second.path.read_bytes())]
    transplanted = tmp_path / "transplanted.png"
    transplanted.write_bytes(png_bytes(chunks))
    verdict = verify_file(transplanted, signing.ca)
    assert verdict.status == TAMPERED and verdict.record == "differs"
    assert "changed after signing" in verdict.reasons[0]
    assert "generation.seed" in verdict.reasons[1] and "image.filename" in verdict.reasons[1]


def test_mp4_media_data_changed_is_tampered(signing: testca.TestCredentials, tmp_path: Path) -> None:
    options = MediaOptions(format="mp4", targets=SIGNED)
    saved = save_video(clip_from(frames(), 8), context_for("default"), tmp_path, "v", options, version="t")
    data = bytearray(saved.path.read_bytes())
    data[data.find(b"mdat") + 200] ^= 0x01
    changed = tmp_path / "changed.mp4"
    changed.write_bytes(bytes(data))
    verdict = verify_file(changed, signing.ca)
    assert verdict.status == TAMPERED and "changed after signing" in verdict.reasons[0]


def test_a_trust_list_without_the_signer_makes_it_untrusted(signing: testca.TestCredentials, tmp_path: Path) -> None:
    saved = save(tmp_path, "png")
    stranger = testca.create(tmp_path / "stranger")
    verdict = verify_file(saved.path, stranger.ca)
    assert (verdict.status, verdict.trusted) == (UNTRUSTED, False)


def test_verify_names_a_damaged_manifest_invalid(signing: testca.TestCredentials, tmp_path: Path) -> None:
    saved = save(tmp_path, "png")
    chunks = png_chunks(saved.path.read_bytes())
    damaged = [(t, d[:40] + bytes(len(d) - 40) if t == b"caBX" else d) for t, d in chunks]
    path = tmp_path / "damaged.png"
    path.write_bytes(png_bytes(damaged))
    verdict = verify_file(path, signing.ca)
    assert verdict.status in (INVALID, TAMPERED) and verdict.reasons


# -- convert ---------------------------------------------------------------------------------------------------------
def core_png(folder: Path) -> Path:
    """What ComfyUI core's SaveImage writes: prompt and workflow as tEXt, nothing else."""
    from PIL import PngImagePlugin

    context = context_for("default")
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(context.prompt))
    for key, value in (context.extra_pnginfo or {}).items():
        info.add_text(key, json.dumps(value))
    path = folder / "ComfyUI_00001_.png"
    Image.fromarray(pixels()).save(path, pnginfo=info)
    return path


def test_convert_signs_a_core_file_which_then_verifies(
    creds: testca.TestCredentials, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = core_png(tmp_path)
    out = tmp_path / "out"
    argv = ["convert", str(source), "--out", str(out), "--targets", "a1111,comfyui,record,xmp,c2pa"]
    assert cli([*argv, "--c2pa-cert", str(creds.chain), "--c2pa-key", str(creds.key)]) == 0
    converted = out / source.name
    assert cli(["verify", "--trust", str(creds.ca), str(converted)]) == 0
    said = capsys.readouterr().out
    signed_by = "signed by ComfyUI Provenance test signer (UNTRUSTED TEST); trusted: on the trust list given"
    assert said.strip().endswith(f"{converted}: valid ({signed_by})")
    assert placement(read(converted)).status == "written"
    # Converted again without signing (--force): the stale manifest goes, and nothing claims one.
    assert cli(["convert", str(converted), "--in-place", "--force"]) == 0
    assert b"caBX" not in converted.read_bytes()
    assert verify_file(converted).status == UNSIGNED
    # And signed again.
    assert (
        cli(
            [
                *argv[:2],
                "--in-place",
                "--force",
                *argv[4:],
                "--c2pa-cert",
                str(creds.chain),
                "--c2pa-key",
                str(creds.key),
            ]
        )
        == 0
    )


def test_convert_refuses_signing_flags_without_the_target(creds: testca.TestCredentials, tmp_path: Path) -> None:
    source = core_png(tmp_path)
    assert (
        cli(["convert", str(source), "--in-place", "--c2pa-cert", str(creds.chain), "--c2pa-key", str(creds.key)]) == 2
    )


# -- the CLI ---------------------------------------------------------------------------------------------------------
def test_verify_cli_statuses_json_and_exit_codes(
    signing: testca.TestCredentials, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = save(tmp_path, "png").path
    plain = save(tmp_path, "jpeg", targets=DEFAULT_TARGETS).path
    assert cli(["verify", str(good)]) == 0
    assert cli(["verify", str(good), str(plain)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"{plain}: unsigned" and lines[-2].startswith(f"{good}: valid (")
    assert cli(["verify", "--json", str(good)]) == 0
    one = json.loads(capsys.readouterr().out)
    assert (one["status"], one["record"], one["trusted"]) == ("valid", "agrees", None)
    assert cli(["verify", "--json", str(tmp_path)]) == 1
    many = json.loads(capsys.readouterr().out)
    assert sorted(v["status"] for v in many) == ["unsigned", "valid"]
    assert cli(["verify", str(tmp_path / "nothing.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing.png" in err and "Traceback" not in err


def test_read_shows_the_credentials(
    signing: testca.TestCredentials, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = save(tmp_path, "png").path
    assert cli(["read", str(good)]) == 0
    out = capsys.readouterr().out
    assert "  embedded  : c2pa -> png:caBX [written] (signed with an untrusted test certificate)" in out
    assert "  credentials: valid (signed by ComfyUI Provenance test signer (UNTRUSTED TEST)" in out
    plain = save(tmp_path, "png", targets=DEFAULT_TARGETS).path
    assert cli(["read", str(plain)]) == 0
    assert "credentials" not in capsys.readouterr().out


def test_c2pa_init_writes_credentials_and_records_them_in_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file = tmp_path / "user" / "provenance" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text(json.dumps({"hash_wait_s": 2}))
    folder = tmp_path / "creds"
    try:
        assert cli(["--settings", str(settings_file), "c2pa", "init", "--out", str(folder)]) == 0
    finally:
        settings.set_file(None)
    said = capsys.readouterr().out
    assert "UNTRUSTED TEST credentials" in said
    stored = json.loads(settings_file.read_text())
    assert stored == {
        "hash_wait_s": 2,
        "c2pa_cert": str(folder / "signer-chain.pem"),
        "c2pa_key": str(folder / "signer-key.pem"),
    }
    assert (folder / "signer-key.pem").stat().st_mode & 0o777 == 0o600
    loaded = signer.load(folder / "signer-chain.pem", folder / "signer-key.pem")
    assert (loaded.alg, loaded.test) == ("es256", True)
    from cryptography import x509

    leaf, ca = x509.load_pem_x509_certificates((folder / "signer-chain.pem").read_bytes())
    assert leaf.issuer == ca.subject != leaf.subject
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.ObjectIdentifier(testca.DOCUMENT_SIGNING) in eku
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # Again: refused, nothing replaced.
    assert cli(["c2pa", "init", "--out", str(folder)]) == 1
    assert "--force replaces them" in capsys.readouterr().err


def test_without_c2pa_python_saves_say_why_and_verify_says_what_to_install(
    creds: testca.TestCredentials, tmp_path: Path
) -> None:
    """In a process where c2pa-python does not import (as on a ComfyUI without the extra)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys, json
        sys.modules["c2pa"] = None  # what `import c2pa` meets where the package is not installed
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from conftest import context_for, pixels
        from comfyui_provenance.metadata import settings
        from comfyui_provenance.metadata.formats.base import DEFAULT_TARGETS
        from comfyui_provenance.metadata.save import SaveOptions, save_images
        from comfyui_provenance.cli.main import main
        opts = SaveOptions(format="png", targets=DEFAULT_TARGETS | {{"c2pa"}})
        with settings.override(c2pa_cert=Path({str(creds.chain)!r}), c2pa_key=Path({str(creds.key)!r})):
            saved = save_images([pixels()], context_for("default"), Path({str(tmp_path)!r}), "img", opts)[0]
        (where,) = [p for p in saved.record.provenance.embedding if p.target == "c2pa"]
        print(json.dumps([where.status, where.reason, saved.path.is_file()]))
        sys.stdout.flush()
        sys.exit(main(["verify", str(saved.path)]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    status, reason, saved = json.loads(done.stdout.splitlines()[0])
    assert (status, reason, saved) == ("omitted", signer.LIBRARY_MISSING, True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"provenance: {signer.LIBRARY_MISSING}"
