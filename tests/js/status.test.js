import assert from "node:assert/strict";
import test from "node:test";

import { catalogueStatus, fallbackToastText, hookStatus, statusLine } from "../../web/lib/status.js";
import { fixture } from "./fixtures.js";

function withHooks(status, change) {
  const copy = structuredClone(status);
  for (const hook of Object.values(copy.hooks)) change(hook);
  return copy;
}

test("hooks off: the pack's own answer names the variable to set", () => {
  const status = fixture("status_off");
  const line = statusLine(status);
  assert.equal(line.state, "off");
  assert.match(line.text, /^v0\.1\.0 · Hooks off: PROVENANCE_HOOKS is not set/);
  assert.match(line.text, / · catalogue on$/);
});

test("hooks on: every active hook is named", () => {
  const status = withHooks(fixture("status_off"), (h) => Object.assign(h, { installed: true, active: true, skipped: null }));
  Object.assign(status, { enabled_by_env: true, installed: true, active: true });
  const hooks = hookStatus(status);
  assert.equal(hooks.state, "on");
  assert.equal(hooks.text, "Hooks on: executor, execute, inputs, outputs");
});

test("one hook disabled after failures: partial, with its reason", () => {
  const status = withHooks(fixture("status_off"), (h) => Object.assign(h, { installed: true, active: true, skipped: null }));
  Object.assign(status, { enabled_by_env: true, installed: true, active: true });
  Object.assign(status.hooks.inputs, { active: false, disabled: true, disabled_reason: "3 failures in a row" });
  const hooks = hookStatus(status);
  assert.equal(hooks.state, "partial");
  assert.equal(hooks.text, "Hooks on: executor, execute, outputs; disabled: inputs (3 failures in a row)");
});

test("every hook disabled: disabled, with the reasons", () => {
  const status = withHooks(fixture("status_off"), (h) => Object.assign(h, {
    installed: true, active: false, disabled: true, disabled_reason: "target changed shape", skipped: null,
  }));
  Object.assign(status, { enabled_by_env: true, installed: true, active: false });
  const hooks = hookStatus(status);
  assert.equal(hooks.state, "disabled");
  assert.match(hooks.text, /^Hooks disabled: executor \(target changed shape\), execute/);
});

test("enabled but not installed (no ComfyUI execution module): says so", () => {
  const status = withHooks(fixture("status_off"), (h) => Object.assign(h, { skipped: "hooks not installed" }));
  status.enabled_by_env = true;
  assert.equal(hookStatus(status).text, "Hooks not installed: hooks not installed");
});

test("no answer, or nonsense: status unknown, never a throw", () => {
  assert.equal(statusLine(null).state, "unknown");
  assert.equal(statusLine("x").state, "unknown");
  assert.equal(statusLine({ hooks: "what" }).state, "off");
});

test("catalogue: off, on, and the writers' counts summed", () => {
  assert.equal(catalogueStatus({ catalogue_enabled: false }), "catalogue off");
  assert.equal(catalogueStatus({ catalogue: {} }), "catalogue on");
  const stats = { submitted: 5, indexed: 4, skipped: 0, failed: 1, dropped: 0, retries: 0, queued: 2, failing: false, last_error: "disk full" };
  assert.equal(
    catalogueStatus({ catalogue: { "/u/catalogue.sqlite": stats, "/v/c.sqlite": { ...stats, last_error: null } } }),
    "catalogue: 8 indexed, 4 queued, 2 failed, last error: disk full",
  );
});

test("fallback toast: the save node's own event (nodes/save_image.py fallback_event)", () => {
  const event = {
    prompt_id: "p1",
    node_id: "9",
    files: [{ filename: "ComfyUI_00001_.jpg", subfolder: "", type: "output" }, { filename: "ComfyUI_00002_.jpg", subfolder: "", type: "output" }],
    reasons: [
      { kind: "sidecar", detail: "record went to sidecar:json: record exceeds the 65,504-byte XMP segment" },
      { kind: "hash_pending", detail: "lora x.safetensors: hash still being computed when saved" },
    ],
  };
  assert.equal(fallbackToastText(event),
    "ComfyUI_00001_.jpg and 1 more file: record went to sidecar:json: record exceeds the 65,504-byte XMP segment (+1 more reason)");
  const disabled = { files: [{ filename: "a.png" }], reasons: [{ kind: "metadata_disabled", detail: "ComfyUI runs with --disable-metadata: pixels only" }] };
  assert.equal(fallbackToastText(disabled), "a.png: ComfyUI runs with --disable-metadata: pixels only");
  assert.equal(fallbackToastText({ reasons: [{ kind: "other" }] }), "other");
});

test("fallback toast: the file and its first fallen-back placement, with a count of the rest", () => {
  const record = fixture("inspect_hostile").record;
  const text = fallbackToastText({ filename: "output/hostile_00001_.jpg", placements: record.provenance.embedding });
  assert.equal(text, "hostile_00001_.jpg: a1111 → sidecar:txt: infotext exceeds the 65,527-byte EXIF limit (+3 more reasons)");
});

test("fallback toast: plain reason strings, a single reason, and nothing at all", () => {
  assert.equal(fallbackToastText({ file: "a.webp", reasons: ["record moved to a sidecar"] }), "a.webp: record moved to a sidecar");
  assert.equal(fallbackToastText({ reasons: ["x", "y", "z"] }), "x (+2 more reasons)");
  assert.equal(fallbackToastText({ reason: "EXIF full" }), "EXIF full");
  assert.equal(fallbackToastText({}), "metadata fell back");
  assert.equal(fallbackToastText(null), "metadata fell back");
  assert.equal(fallbackToastText("odd"), "odd");
});

test("fallback toast: always one line, short, and plain text", () => {
  const text = fallbackToastText({ filename: "a\nb.png", reasons: [`line1\nline2 <b>${"x".repeat(500)}</b>`] });
  assert.ok(!text.includes("\n"));
  assert.ok(text.length <= 240);
  assert.ok(text.includes("<b>"), "kept as text: the toast shows it as text");
});
