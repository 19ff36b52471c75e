"""Content Credentials: C2PA manifests signed over the final bytes of a saved file, and their verification.

Optional: c2pa-python (`pip install 'comfyui-provenance[c2pa]'`) signs and verifies; without it the
`c2pa` target records why nothing was signed, and `provenance verify` says what is missing.
`signer` decides and signs at save time, `manifest` says what a manifest holds, `verify` checks a
file, `testca` makes untrusted test credentials (`provenance c2pa init`).
"""
