import assert from "node:assert/strict";
import test from "node:test";

import { changeRow, diffRows } from "../../web/lib/diff.js";
import { fixture } from "./fixtures.js";

test("a real `provenance diff --json`: one row per change, every section", () => {
  const answer = fixture("diff");
  const { identical, rows, unknown } = diffRows(answer);
  assert.equal(identical, false);
  assert.deepEqual(unknown, []);
  const sections = new Set(rows.map((r) => r.section));
  for (const s of ["generation", "passes", "models", "graph added", "graph changed"]) assert.ok(sections.has(s), s);
  const seed = rows.find((r) => r.section === "generation" && r.field === "seed");
  assert.deepEqual(seed, { section: "generation", where: "", field: "seed", change: "", a: "261660645921551", b: "736724629443131" });
  const passSeed = rows.find((r) => r.section === "passes" && r.field === "seed");
  assert.equal(passSeed.where, "pass 1 · node 3");
  const added = rows.find((r) => r.section === "models" && r.change === "added");
  assert.equal(added.where, "lora · MoXinV1.safetensors");
  assert.match(added.b, /"strength_model":0.9/);
  const node = rows.find((r) => r.section === "graph added");
  assert.equal(node.where, "node 10 · LoraLoader");
  const input = rows.find((r) => r.section === "graph changed" && r.field === "model");
  assert.deepEqual([input.a, input.b], ['["11",0]', '["10",0]']);
  const total = ["generation", "passes", "models", "environment"].reduce((n, k) => n + answer.diff[k].length, 0)
    + answer.diff.graph.added.length + answer.diff.graph.removed.length + answer.diff.graph.changed.length;
  assert.equal(rows.length, total);
});

test("identical files: no rows, identical", () => {
  const diff = { a: "x.png", b: "x.png", identical: true, generation: [], passes: [], models: [], environment: [], graph: { added: [], removed: [], changed: [] } };
  assert.deepEqual(diffRows({ a: "x", b: "x", diff }), { identical: true, rows: [], unknown: [] });
});

test("other spellings of a change: path/before/after, old/new", () => {
  assert.deepEqual(changeRow("s", { path: "generation.cfg", before: 7, after: 8 }),
    { section: "s", where: "", field: "generation.cfg", change: "", a: "7", b: "8" });
  assert.deepEqual(changeRow("s", { key: "k", old: null, new: "v" }),
    { section: "s", where: "", field: "k", change: "", a: "", b: "v" });
  assert.equal(changeRow("s", "plain").a, "plain");
});

test("shapes it does not know are reported, not dropped or thrown on", () => {
  const { rows, unknown } = diffRows({ diff: { identical: false, snapshot: { count: 3 }, images: [{ weird: 1 }], note: "hm" } });
  assert.deepEqual(rows, []);
  assert.deepEqual(unknown.sort(), ["images", "note", "snapshot count"]);
  assert.deepEqual(diffRows(null), { identical: false, rows: [], unknown: ["diff"] });
  assert.deepEqual(diffRows([1, 2]).unknown, ["diff"]);
});
