"""Which files a PATH... argument names: files as given, folders walked for images, videos and sounds."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..metadata.files import SAVED_SUFFIXES


def walked(name: str) -> bool:
    """An image, video or sound a folder walk picks up.

    Sidecars (`x.png.json`, `.xmp`, `.txt`, `.runtime.json`) end in their own suffix and so are
    left out; dot-files include the library's temporary files (`.x.png.1234.tmp`) and macOS's
    `._x.png` resource forks, which end in an image suffix but are not images.
    """
    return name.lower().endswith(SAVED_SUFFIXES) and not name.startswith(".")


def walk(paths: Iterable[str], skip: Path | None = None) -> Iterator[tuple[Path, Path]]:
    """(file, its name relative to the argument) for each PATH, folders walked recursively in name order.

    A file argument is yielded as given, whatever its name, so a missing or odd file is reported
    by whoever reads it. Hidden folders and `skip` (convert's --out, resolved) are not entered.
    """
    for arg in paths:
        root = Path(arg)
        if not root.is_dir():
            yield root, Path(root.name)
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(folder) / d).resolve() != skip)
            for name in sorted(files):
                if walked(name):
                    path = Path(folder) / name
                    yield path, path.relative_to(root)
