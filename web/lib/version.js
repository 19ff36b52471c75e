/** The pack's version as the browser knows it (tests/test_js.py keeps it equal to comfyui_provenance.__version__). */

// About-page badges are read once, at registration, so the badge cannot wait for /provenance/status.
export const VERSION = "0.1.0";
