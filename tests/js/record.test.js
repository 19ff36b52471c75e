import assert from "node:assert/strict";
import test from "node:test";

import {
  captureRows, disagreementRows, fileRows, generationRows, loraRows, modelRows, passes, placementRows, prompts,
  runtimeSummary, shortHash, strengths, warnings,
} from "../../web/lib/record.js";
import { show, sizeOf } from "../../web/lib/text.js";
import { HOSTILE, fixture } from "./fixtures.js";

const lora = () => fixture("inspect_lora").record;

/** Every display value of view-model rows (fellBack is the one flag, not text). */
function everyValue(rows) {
  return rows.flatMap((row) => Object.entries(row)
    .filter(([key]) => key !== "fellBack")
    .flatMap(([, v]) => (Array.isArray(v) ? everyValue(v) : [v])));
}

test("generation rows: seed first, then the sampler settings; prompts and blanks left out", () => {
  const rows = generationRows(lora());
  assert.deepEqual(rows.slice(0, 6).map((r) => [r.key, r.value]), [
    ["seed", "261660645921551"], ["steps", "30"], ["cfg", "7"], ["sampler", "dpmpp_2m"], ["scheduler", "karras"], ["denoise", "1"],
  ]);
  const keys = rows.map((r) => r.key);
  assert.ok(!keys.includes("positive") && !keys.includes("guidance") && !keys.includes("input_images"), keys.join());
  assert.ok(keys.includes("width") && keys.includes("batch_size"));
  assert.equal(prompts(lora()).positive.slice(0, 14), "upperbody shot");
});

test("models: AutoV2 shown, the full SHA-256 kept for the tooltip", () => {
  const models = lora().models;
  const rows = modelRows(lora());
  assert.equal(rows.length, 2);
  assert.equal(rows[0].role, "checkpoint");
  assert.equal(rows[0].hash, models[0].hashes.autov2);
  assert.equal(rows[0].hash.length, 10);
  assert.equal(rows[0].fullHash, models[0].hashes.sha256);
  assert.equal(rows[0].hashKinds, "sha256, autov2");
  assert.equal(rows[1].strength, "model 0.75 / clip 1");
});

test("hashes: sha256 cut when AutoV2 is missing; nothing when there are none", () => {
  const sha = "ab".repeat(32);
  assert.deepEqual(shortHash({ sha256: sha }), { short: sha.slice(0, 10), full: sha, kinds: ["sha256"] });
  assert.deepEqual(shortHash({ autov3: "123456789abc" }), { short: "123456789abc", full: "123456789abc", kinds: ["autov3"] });
  assert.deepEqual(shortHash({}), { short: "", full: "", kinds: [] });
  assert.deepEqual(shortHash("nonsense"), { short: "", full: "", kinds: [] });
  assert.equal(modelRows(fixture("inspect_hostile").record)[0].hash, "");
});

test("strengths: one number when model and clip agree", () => {
  assert.equal(strengths({ strength_model: 0.8, strength_clip: 0.8 }), "0.8");
  assert.equal(strengths({ strength_model: 0.8 }), "0.8");
  assert.equal(strengths({ strength_clip: 0.5 }), "0.5");
  assert.equal(strengths({}), "");
});

test("LoRAs: the models list's, plus those only a pass names", () => {
  assert.deepEqual(loraRows(lora()), [{ name: "blindbox_v1_mix.safetensors", strength: "model 0.75 / clip 1" }]);
  const record = lora();
  record.models = record.models.filter((m) => m.role !== "lora");
  record.passes[0].loras.push({ name: "extra.safetensors", strength_model: 1, strength_clip: 1 });
  assert.deepEqual(loraRows(record).map((l) => l.name), ["blindbox_v1_mix.safetensors", "extra.safetensors"]);
});

test("passes: titled by sampler node, with their own rows and LoRAs", () => {
  const [pass] = passes(lora());
  assert.equal(pass.title, "Pass 1 (KSampler, node 3)");
  assert.equal(pass.rows.find((r) => r.key === "model").value, "dreamshaper_8.safetensors");
  assert.ok(!pass.rows.some((r) => r.key === "sources" || r.key === "loras"));
  assert.deepEqual(pass.loras, [{ name: "blindbox_v1_mix.safetensors", strength: "model 0.75 / clip 1" }]);
  assert.deepEqual(passes({ passes: "x" }), []);
});

test("placements: a JPEG too small for everything shows what fell back and why", () => {
  const rows = placementRows(fixture("inspect_hostile").record);
  const fell = rows.filter((r) => r.fellBack);
  assert.equal(fell.length, 4);
  assert.deepEqual(fell[0], {
    target: "a1111", location: "sidecar:txt", status: "moved", reason: "infotext exceeds the 65,527-byte EXIF limit", fellBack: true,
  });
  assert.ok(rows.some((r) => r.target === "xmp" && !r.fellBack));
  assert.ok(placementRows(lora()).every((r) => !r.fellBack));
});

test("runtime capture: merged mode, the disagreement, and the runtime block in brief", () => {
  const record = fixture("inspect_runtime").record;
  const capture = Object.fromEntries(captureRows(record).map((r) => [r.label, r.value]));
  assert.equal(capture["capture mode"], "parser+hooks");
  assert.equal(capture.generator, "ComfyUI Provenance 0.1.0");
  assert.equal(capture["ComfyUI version"], "0.33.0");
  assert.deepEqual(disagreementRows(record), [{ field: "generation.seed", values: "parser: 261660645921551 · runtime: 42" }]);
  const summary = Object.fromEntries(runtimeSummary(record.runtime).map((r) => [r.key, r.size]));
  assert.equal(summary.nodes, "7 keys");
  assert.equal(summary.order, "7 items");
  assert.equal(summary.prompt_id, "fixture-runtime");
  assert.equal(summary.ended, "none");
  assert.deepEqual(runtimeSummary(null), []);
  assert.deepEqual(disagreementRows(lora()), []);
});

test("file rows: a dropped file says it is not on the server", () => {
  const uploaded = Object.fromEntries(fileRows(fixture("inspect_hostile").file).map((r) => [r.label, r.value]));
  assert.equal(uploaded.folder, "dropped here (not on the server)");
  assert.match(uploaded.size, /^\d+ bytes$/);
  const saved = Object.fromEntries(fileRows(fixture("inspect_lora").file).map((r) => [r.label, r.value]));
  assert.equal(saved.folder, "output");
  assert.match(saved.modified, /^\d{4}-\d\d-\d\dT/);
});

test("hostile strings stay strings: every view-model value is plain text, HTML kept verbatim", () => {
  const record = fixture("inspect_hostile").record;
  assert.ok(prompts(record).positive.startsWith(HOSTILE));
  record.models[0].name = HOSTILE;
  record.models[0].hashes = { sha256: HOSTILE };
  record.provenance.warnings = [HOSTILE, { nested: HOSTILE }];
  record.provenance.disagreements = [{ field: HOSTILE, parser: [HOSTILE], runtime: { x: HOSTILE } }];
  record.runtime = { [HOSTILE]: HOSTILE };
  record.generation.sampler = { toString: () => "<b>" };
  const values = everyValue([
    ...generationRows(record), ...modelRows(record), ...placementRows(record), ...captureRows(record),
    ...disagreementRows(record), ...runtimeSummary(record.runtime), ...passes(record), ...loraRows(record),
    ...warnings(record).map((w) => ({ w })),
  ]);
  for (const value of values) assert.equal(typeof value, "string", `not a string: ${value}`);
  assert.equal(modelRows(record)[0].name, HOSTILE);
  assert.equal(warnings(record)[0], HOSTILE);
});

test("show and sizeOf: text for anything", () => {
  assert.equal(show(null), "");
  assert.equal(show(0), "0");
  assert.equal(show(false), "false");
  assert.equal(show([1, "a", null]), "1, a, ");
  assert.equal(show([{ a: 1 }]), '[{"a":1}]');
  const loop = {};
  loop.self = loop;
  assert.equal(show(loop), "[object Object]");
  assert.equal(sizeOf("x".repeat(41)), "41 characters");
  assert.equal(sizeOf([1]), "1 item");
  assert.equal(sizeOf(3), "3");
});
