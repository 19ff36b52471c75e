"""Reproduce, batch, manifests and diff: runs a ComfyUI server again from what files and manifests record."""
