import assert from "node:assert/strict";
import test from "node:test";

import { reportView } from "../../web/lib/report.js";
import { fixture } from "./fixtures.js";

test("a refused dry run: status, notes, every check as a line, and what blocks the run", () => {
  const view = reportView(fixture("reproduce_refused"));
  assert.equal(view.status, "refused");
  assert.deepEqual(view.lines, [
    "status: refused",
    "note: the seed is the recorded one",
    "differences: model file missing: loras/blindbox_v1_mix.safetensors",
    "warnings: no hash to compare for checkpoints/dreamshaper_8.safetensors",
    "server comfyui version: 0.33.0",
    "server pack version: 0.1.0",
  ]);
  assert.deepEqual(view.blocking, ["model file missing: loras/blindbox_v1_mix.safetensors"]);
  assert.equal(view.promptId, "");
});

test("a queued run: its prompt id", () => {
  const view = reportView({ report: { status: "queued", prompt_id: "abc-123", notes: [], checks: {} } });
  assert.equal(view.promptId, "abc-123");
  assert.ok(view.lines.includes("prompt id: abc-123"));
  assert.deepEqual(view.blocking, []);
});

test("a bare report, problems lists, and nonsense are all read", () => {
  const view = reportView({ status: "checked", problems: ["node class MissingNode not on this server"] });
  assert.ok(view.lines.includes("problems: node class MissingNode not on this server"));
  assert.deepEqual(view.blocking, ["node class MissingNode not on this server"]);
  assert.equal(reportView(null).status, "unknown");
  assert.equal(reportView({ prompt_id: "p" }).status, "queued");
  assert.equal(reportView({ report: { checks: "x", notes: "y" } }).lines.length, 1);
});
