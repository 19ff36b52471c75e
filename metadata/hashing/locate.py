"""Where a model named in a graph lives on disk: (role, name) → path, through a ModelLocator."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol

# Record role → ComfyUI `folder_paths` folder names, searched in order.
ROLE_FOLDERS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("checkpoints",),
    "lora": ("loras",),
    "vae": ("vae",),
    "unet": ("diffusion_models",),
    "diffusion_model": ("diffusion_models",),
    "clip": ("text_encoders",),
    "text_encoder": ("text_encoders",),
    "embedding": ("embeddings",),
    "upscaler": ("upscale_models",),
    "controlnet": ("controlnet",),
    "clip_vision": ("clip_vision",),
    "hypernetwork": ("hypernetworks",),
    "style_model": ("style_models",),
    "gligen": ("gligen",),
}
# ComfyUI's default layout under models/ (folder_paths.py): folder name → its directories.
DEFAULT_LAYOUT: dict[str, tuple[str, ...]] = {
    "diffusion_models": ("unet", "diffusion_models"),
    "text_encoders": ("text_encoders", "clip"),
    "controlnet": ("controlnet", "t2i_adapter"),
}
# Prompt text names embeddings without an extension; ComfyUI (sd1_clip.load_embed) tries these.
EMBEDDING_EXTENSIONS = (".safetensors", ".pt", ".bin", ".pth")

Finder = Callable[[str, str], "str | os.PathLike[str] | None"]


class ModelLocator(Protocol):
    def locate(self, role: str, name: str) -> Path | None:
        """The file a node with this role loaded under this name, or None when it cannot be found."""
        ...


class FolderLocator:
    """A locator over a `find(folder, name)` such as ComfyUI's `folder_paths.get_full_path`."""

    def __init__(self, find: Finder) -> None:
        self._find = find

    def locate(self, role: str, name: str) -> Path | None:
        folders = ROLE_FOLDERS.get(role)
        relative = safe_name(name)
        if not folders or relative is None:
            return None
        candidates = [relative]
        if role == "embedding" and not relative.lower().endswith(EMBEDDING_EXTENSIONS):
            candidates += [relative + ext for ext in EMBEDDING_EXTENSIONS]
        for folder in folders:
            for candidate in candidates:
                found = self._find(folder, candidate)
                if found is not None:
                    return Path(found)
        return None


class RootsLocator(FolderLocator):
    """Models under one or more models folders laid out as ComfyUI's (`checkpoints/`, `loras/`, ...)."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.roots = tuple(Path(r) for r in roots)
        super().__init__(self._find_in_roots)

    def _find_in_roots(self, folder: str, name: str) -> Path | None:
        for root in self.roots:
            for directory in DEFAULT_LAYOUT.get(folder, (folder,)):
                path = root / directory / name
                if path.is_file():
                    return path
        return None


def safe_name(name: str) -> str | None:
    """`name` as a relative path inside a models folder; None for an absolute path or one that climbs out.

    Windows separators count as separators, so a graph saved on Windows resolves elsewhere too.
    """
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        return None
    posix = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in posix.parts if p != "."]
    if posix.is_absolute() or ".." in parts or (parts and _is_drive(parts[0])):
        return None
    return os.path.join(*parts) if parts else None


def _is_drive(part: str) -> bool:
    return len(part) >= 2 and part[1] == ":" and part[0].isalpha()
