"""Crash-safe writes: temporaries a later run recognises, atomic replaces, images published with their sidecars.

Every temporary is `.<target name>.prov-<host>-<pid>-<token>.tmp` beside its target, so a later
run can tell whose it is: one whose process is gone (or that is a day old) is stale and swept.
A new image is written as a unit (`Publication`): sidecar temporaries first, then the image's,
then the image is hard-linked to its final name, which claims the name and publishes the
complete file in one step (no empty placeholder is ever visible), then the sidecars are renamed
into place and the image's temporary removed. A process killed before the link leaves only
temporaries, which the sweep removes; killed after it, the sweep finds the image's temporary
still linked to the published image and completes the sidecars. Replacing an existing file
(`replace_with`) writes a temporary and renames it over the target.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600
LEGACY_STALE_AFTER_S = 3600
# What we save and stamp: images, then video and audio containers (a sidecar never ends so).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
MEDIA_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".flac", ".mp3", ".opus", ".ogg")
SAVED_SUFFIXES = IMAGE_SUFFIXES + MEDIA_SUFFIXES
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_TEMP = re.compile(r"^\.(?P<target>.+)\.prov-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})\.tmp$")
# What mkstemp named our temporaries before they carried their owner.
_LEGACY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files get the permissions a plain open() would give them, not mkstemp's private 0600.
FILE_MODE = 0o666 & ~_umask()


class NameTaken(Exception):
    """The final name was claimed by someone else between choosing it and publishing."""


def new_token() -> str:
    return secrets.token_hex(4)


def temp_path(target: Path, token: str) -> Path:
    return target.with_name(f".{target.name}.prov-{_HOST}-{os.getpid()}-{token}.tmp")


def _write_temp(target: Path, token: str, write: Callable[[BinaryIO], Any], *, mode: int, durable: bool) -> Path:
    """`write` fills a new temporary for `target`; removed again if anything fails."""
    tmp = temp_path(target, token)
    try:
        # Created with the plain-open mode (the umask applies), so the usual case needs no chmod.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode != FILE_MODE:
            os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def replace_with(
    path: Path,
    write: Callable[[BinaryIO], Any],
    *,
    mode: int | None = None,
    check: Callable[[Path], Any] | None = None,
    durable: bool = False,
) -> None:
    """Let `write` fill a temporary file beside `path`, then rename it over `path` (atomic).

    `check` sees the finished temporary file and may refuse it by raising; `durable` flushes it
    to disk before the rename, so a crash leaves the old file or the new one, never a torn one.
    """
    tmp = _write_temp(path, new_token(), write, mode=FILE_MODE if mode is None else mode, durable=durable)
    try:
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    replace_with(path, lambda handle: handle.write(data))


class Publication:
    """One new image and its sidecars, published together under a name nobody else holds."""

    def __init__(self, image: Path) -> None:
        self.image = image
        self.token = new_token()
        self.sidecars: list[tuple[Path, Path]] = []  # (temporary, final)
        self._image_tmp: Path | None = None

    def add_sidecar(self, path: Path, data: bytes) -> None:
        """Stage a sidecar (written now, renamed into place once the image is published)."""
        tmp = _write_temp(path, self.token, lambda handle: handle.write(data), mode=FILE_MODE, durable=False)
        self.sidecars.append((tmp, path))

    def stage_image(self, write: Callable[[BinaryIO], Any]) -> None:
        self._image_tmp = _write_temp(self.image, self.token, write, mode=FILE_MODE, durable=False)

    def publish(self) -> list[Path]:
        """Claim the image's name with its finished bytes, then put the sidecars in place; their final paths.

        NameTaken when the name was taken meanwhile (everything staged is removed then).
        """
        tmp = self._image_tmp
        assert tmp is not None, "stage_image first"
        try:
            _claim(tmp, self.image)
        except BaseException:
            self.abandon()
            raise
        done = []
        for sidecar_tmp, final in self.sidecars:
            try:
                os.replace(sidecar_tmp, final)
                done.append(final)
            except OSError as err:
                logger.warning("provenance: could not put %s in place: %s", final.name, err)
                with contextlib.suppress(OSError):
                    os.unlink(sidecar_tmp)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        self.sidecars, self._image_tmp = [], None
        return done

    def abandon(self) -> None:
        """Remove everything staged (nothing was published)."""
        for path in [t for t, _ in self.sidecars] + ([self._image_tmp] if self._image_tmp else []):
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.sidecars, self._image_tmp = [], None


def _claim(tmp: Path, final: Path) -> None:
    """Publish `tmp` as `final` only if `final` does not exist: a hard link, atomic and exclusive.

    Where the filesystem has no hard links (FAT, some network shares), an exclusive create of the
    name followed by a rename over it: the name is briefly visible empty there.
    """
    try:
        os.link(tmp, final)
        return
    except FileExistsError as err:
        raise NameTaken(str(final)) from err
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
    try:
        os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError as err:
        raise NameTaken(str(final)) from err
    os.replace(tmp, final)


# -- the sweep ------------------------------------------------------------------------------------
_swept: set[str] = set()
_sweep_lock = threading.Lock()


def sweep_once(folder: Path) -> None:
    """`sweep(folder)` the first time this process writes there (a crash is followed by a restart)."""
    key = os.path.realpath(folder)
    with _sweep_lock:
        if key in _swept:
            return
        _swept.add(key)
    try:
        sweep(folder)
    except OSError as err:
        logger.debug("provenance: sweeping %s failed: %s", folder, err)


def sweep(folder: Path, *, now: float | None = None) -> list[str]:
    """Finish or remove what writers killed in `folder` left behind; what was done, one line each."""
    now = time.time() if now is None else now
    groups: dict[str, list[tuple[Path, str]]] = {}
    legacy: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(".") or not entry.name.endswith(".tmp"):
                continue
            match = _TEMP.match(entry.name)
            if match is not None:
                if _stale(match["host"], int(match["pid"]), Path(entry.path), now):
                    groups.setdefault(match["token"], []).append((Path(entry.path), match["target"]))
            elif _LEGACY.match(entry.name) and _age(Path(entry.path), now) > LEGACY_STALE_AFTER_S:
                legacy.append(Path(entry.path))
    done = [_settle(folder, members) for members in groups.values()]
    for path in legacy:
        with contextlib.suppress(OSError):
            path.unlink()
            done.append(f"removed {path.name}")
    return [line for line in done if line]


def _settle(folder: Path, members: list[tuple[Path, str]]) -> str:
    """One dead writer's temporaries: complete its sidecars if its image was published, else remove them all."""
    image = next(((tmp, target) for tmp, target in members if target.lower().endswith(SAVED_SUFFIXES)), None)
    published = False
    if image is not None:
        with contextlib.suppress(OSError):
            published = os.path.samefile(image[0], folder / image[1])
    finished = []
    for tmp, target in members:
        with contextlib.suppress(OSError):
            if published and tmp != image[0]:  # type: ignore[index]
                os.replace(tmp, folder / target)
                finished.append(target)
            else:
                tmp.unlink()
    if published:
        return f"completed {image[1]}: " + (", ".join(finished) or "no sidecars")  # type: ignore[index]
    return f"removed {len(members)} unfinished temporary file(s)"


def _stale(host: str, pid: int, path: Path, now: float) -> bool:
    if host == _HOST and pid != os.getpid() and not _alive(pid):
        return True
    return _age(path, now) > STALE_AFTER_S


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it there: trust the age alone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0
