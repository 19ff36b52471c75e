import assert from "node:assert/strict";
import test from "node:test";

import { copyText, el } from "../../web/lib/dom.js";
import { buildPager, buildSearchForm, renderTiles } from "../../web/lib/gallery.js";
import { NOT_ON_SERVER, loadPlan, renderDiff, renderInspector, renderReport } from "../../web/lib/inspector.js";
import { paging } from "../../web/lib/routes.js";
import { injectStyle } from "../../web/lib/style.js";
import { FakeDocument, allByTestId, byTestId } from "./fakedom.js";
import { HOSTILE, fixture } from "./fixtures.js";

const app = { loadGraphData: () => {}, loadApiJson: () => {} };
const apiURL = (p) => `/api${p}`;

test("the inspector shows prompt, seed, models, placements and A1111 text of a real file", () => {
  const doc = new FakeDocument();
  const answer = fixture("inspect_lora");
  const { element } = renderInspector(doc, answer, { app, apiURL });
  assert.equal(element.getAttribute("data-testid"), "provenance-inspector");
  assert.equal(byTestId(element, "provenance-prompt").textContent, answer.record.generation.positive);
  assert.equal(byTestId(element, "provenance-seed").textContent, "261660645921551");
  const models = byTestId(element, "provenance-models");
  const cells = models.querySelectorAll("td");
  assert.equal(cells[2].textContent, answer.record.models[0].hashes.autov2);
  assert.match(cells[2].title, new RegExp(answer.record.models[0].hashes.sha256));
  assert.equal(byTestId(element, "provenance-a1111").textContent, answer.a1111);
  assert.equal(byTestId(element, "provenance-loras").textContent, "blindbox_v1_mix.safetensors @ model 0.75 / clip 1");
  const preview = element.querySelector("img.provenance-preview");
  assert.equal(preview.src, `/api${answer.view}`);
  for (const id of ["provenance-load-workflow", "provenance-reproduce", "provenance-diff", "provenance-copy"]) {
    assert.equal(byTestId(element, id).disabled, undefined, `${id} is enabled`);
  }
});

test("hostile record text is only ever text: no element, attribute or handler comes from it", () => {
  const doc = new FakeDocument();
  const answer = fixture("inspect_hostile");
  answer.a1111 = HOSTILE;
  answer.file.filename = HOSTILE;
  answer.record.models[0].name = HOSTILE;
  answer.record.provenance.warnings = [HOSTILE];
  answer.record.runtime = { [HOSTILE]: [HOSTILE] };
  answer.view = `javascript:alert(1)`;
  // The fake document throws on innerHTML, so rendering at all proves it is never used.
  const { element } = renderInspector(doc, answer, { app, apiURL });
  assert.ok(byTestId(element, "provenance-prompt").textContent.startsWith(HOSTILE));
  assert.equal(byTestId(element, "provenance-a1111").textContent, HOSTILE);
  const nodes = [...element.walk()];
  assert.ok(!nodes.some((n) => ["SCRIPT", "IMG", "VIDEO"].includes(n.tagName)), "no media from record data, no script");
  assert.ok(!nodes.some((n) => [...n.attributes.keys()].some((a) => a.startsWith("on"))), "no on* attribute");
  assert.ok(element.textContent.includes(HOSTILE));
});

test("a dropped file cannot be reproduced or compared, and says why", () => {
  const doc = new FakeDocument();
  const { element, buttons } = renderInspector(doc, fixture("inspect_hostile"), { app, apiURL });
  for (const button of [buttons.reproduce, buttons.diff]) {
    assert.equal(button.disabled, true);
    assert.equal(button.title, NOT_ON_SERVER);
  }
  assert.equal(byTestId(element, "provenance-load-workflow").disabled, undefined);
  assert.equal(byTestId(element, "provenance-a1111").textContent, "(none)");
  assert.equal(byTestId(element, "provenance-copy").disabled, true);
  const fell = element.querySelectorAll("tr.provenance-fellback");
  assert.equal(fell.length, 4);
  assert.equal(fell[0].querySelectorAll("td")[3].textContent, "infotext exceeds the 65,527-byte EXIF limit");
});

test("load workflow: the workflow, else the API prompt, else off with the reason", () => {
  const answer = fixture("inspect_lora");
  assert.deepEqual(loadPlan(answer, app), { kind: "workflow", reason: "" });
  assert.deepEqual(loadPlan({ ...answer, workflow: null }, app), { kind: "prompt", reason: "" });
  assert.match(loadPlan({ ...answer, workflow: null }, { loadGraphData() {} }).reason, /no app.loadApiJson/);
  assert.match(loadPlan({ workflow: null, prompt: null }, app).reason, /no ComfyUI workflow/);
  assert.match(loadPlan(answer, {}).reason, /no app.loadGraphData/);
  const doc = new FakeDocument();
  const { buttons } = renderInspector(doc, { ...answer, workflow: null, prompt: null }, { app, apiURL });
  assert.equal(buttons.load.disabled, true);
  assert.equal(buttons.load.getAttribute("data-disabled-reason"), "the file carries no ComfyUI workflow or prompt");
});

test("the actions call back: load with its plan, reproduce, diff, copy with the text", () => {
  const doc = new FakeDocument();
  const seen = [];
  const answer = fixture("inspect_lora");
  const { element } = renderInspector(doc, answer, {
    app, apiURL,
    on: {
      loadWorkflow: (plan) => seen.push(["load", plan.kind]),
      reproduce: () => seen.push(["reproduce"]),
      diff: () => seen.push(["diff"]),
      copy: (text) => seen.push(["copy", text]),
    },
  });
  for (const id of ["provenance-load-workflow", "provenance-reproduce", "provenance-diff", "provenance-copy"]) byTestId(element, id).click();
  assert.deepEqual(seen, [["load", "workflow"], ["reproduce"], ["diff"], ["copy", answer.a1111]]);
});

test("an inspector of nothing still renders its test ids", () => {
  const doc = new FakeDocument();
  const { element } = renderInspector(doc, {}, {});
  assert.equal(byTestId(element, "provenance-seed").textContent, "unknown");
  assert.equal(byTestId(element, "provenance-prompt").textContent, "");
  assert.equal(byTestId(element, "provenance-load-workflow").disabled, true);
});

test("the dry run's report, then Queue; off when the server would refuse", () => {
  const doc = new FakeDocument();
  const box = el(doc, "div");
  let queued = 0;
  renderReport(doc, box, { report: { status: "ok", notes: ["n"], checks: { differences: [], warnings: [] } } }, { onQueue: () => queued++ });
  assert.equal(box.getAttribute("data-status"), "ok");
  byTestId(box, "provenance-queue").click();
  assert.equal(queued, 1);
  renderReport(doc, box, fixture("reproduce_refused"), { onQueue: () => queued++ });
  const queue = byTestId(box, "provenance-queue");
  assert.equal(queue.disabled, true);
  assert.match(queue.title, /model file missing/);
  queue.click();
  assert.equal(queued, 1);
  assert.equal(box.querySelectorAll("li").length, 6);
  renderReport(doc, box, { report: { status: "queued", prompt_id: "p-1" } }, { queued: true });
  assert.equal(allByTestId(box, "provenance-queue").length, 0);
  assert.match(box.textContent, /prompt id: p-1/);
});

test("the diff renders as a table, with unknown shapes kept as JSON", () => {
  const doc = new FakeDocument();
  const box = el(doc, "div");
  const { rows } = renderDiff(doc, box, fixture("diff"));
  const table = byTestId(box, "provenance-diff-table");
  assert.equal(table.querySelectorAll("tbody")[0].children.length, rows.length);
  assert.match(box.querySelector("h4").textContent, /lora_00001_.png ↔ other_00001_.png/);
  assert.equal(box.querySelectorAll("pre").length, 0);
  const routeAnswer = { ...fixture("diff"), a: { filename: "a.png", subfolder: "", type: "output", kind: "image" }, b: { filename: "b.png", subfolder: "s", type: "output" } };
  renderDiff(doc, box, routeAnswer);
  assert.equal(box.querySelector("h4").textContent, "Diff: a.png ↔ b.png");
  renderDiff(doc, box, { a: "x", b: "y", diff: { identical: false, surprise: { deep: { deeper: { deepest: 1 } } } } });
  assert.match(box.querySelector("pre").textContent, /"surprise"/);
  renderDiff(doc, box, { a: "x", b: "x", diff: { identical: true, generation: [] } });
  assert.equal(box.querySelector("p").textContent, "identical");
});

test("gallery tiles: a data-* reference per file, thumbnails from /view, a video and an audio tile", () => {
  const doc = new FakeDocument();
  const grid = el(doc, "div");
  const rows = fixture("search_page").results;
  rows.push({ path: "/o/clip.mp4", kind: "video", view: { filename: "clip.mp4", subfolder: "v", type: "output" } });
  rows.push({ path: "/o/sound.flac", kind: "audio", view: { filename: "sound.flac", subfolder: "", type: "output" }, prompt: HOSTILE });
  const picked = [];
  renderTiles(doc, grid, rows, { apiURL, onPick: (row, view) => picked.push(view) });
  const tiles = allByTestId(grid, "provenance-tile");
  assert.equal(tiles.length, 5);
  assert.equal(tiles[0].getAttribute("data-filename"), rows[0].view.filename);
  assert.equal(tiles[0].getAttribute("data-subfolder"), "");
  assert.equal(tiles[0].getAttribute("data-type"), "output");
  assert.equal(tiles[0].querySelector("img").src, `/api/view?filename=${rows[0].view.filename}&subfolder=&type=output&preview=webp%3B75`);
  const video = tiles[3].querySelector("video");
  assert.equal(video.muted, true);
  assert.equal(video.preload, "metadata");
  assert.equal(video.src, "/api/view?filename=clip.mp4&subfolder=v&type=output");
  assert.equal(tiles[4].querySelector("img"), null);
  assert.ok(tiles[4].querySelector("i.pi"));
  assert.ok(tiles[4].title.includes(HOSTILE), "the prompt is a tooltip attribute, as text");
  tiles[3].click();
  assert.deepEqual(picked, [{ filename: "clip.mp4", subfolder: "v", type: "output" }]);
  renderTiles(doc, grid, [], { apiURL, onPick() {} });
  assert.equal(grid.children.length, 0);
});

test("search form values and Enter; pager buttons follow the page", () => {
  const doc = new FakeDocument();
  let searches = 0;
  const form = buildSearchForm(doc, { onSearch: () => searches++ });
  byTestId(form.element, "provenance-search").value = "cat";
  byTestId(form.element, "provenance-filter-since").value = "2026-01-01";
  assert.equal(byTestId(form.element, "provenance-filter-since").type, "date");
  assert.deepEqual(form.values(), { text: "cat", model: "", lora: "", since: "2026-01-01", until: "" });
  byTestId(form.element, "provenance-search-button").click();
  byTestId(form.element, "provenance-filter-lora").dispatchEvent({ type: "keydown", key: "Enter" });
  byTestId(form.element, "provenance-filter-lora").dispatchEvent({ type: "keydown", key: "a" });
  assert.equal(searches, 2);
  const pager = buildPager(doc, { onPrev() {}, onNext() {} });
  pager.update(paging(fixture("search_page"), 3));
  assert.equal(byTestId(pager.element, "provenance-prev").disabled, true);
  assert.equal(byTestId(pager.element, "provenance-next").disabled, false);
});

test("copy: the clipboard API, else the textarea fallback, else false", async () => {
  const doc = new FakeDocument();
  const written = [];
  assert.equal(await copyText("a", { doc, nav: { clipboard: { writeText: async (t) => written.push(t) } } }), true);
  assert.deepEqual(written, ["a"]);
  const refused = { clipboard: { writeText: async () => { throw new Error("NotAllowedError"); } } };
  assert.equal(await copyText("b", { doc, nav: refused }), true);
  assert.deepEqual(doc.copied, ["b"]);
  assert.equal(doc.body.children.length, 0, "the textarea is removed again");
  doc.execCommandWorks = false;
  assert.equal(await copyText("c", { doc, nav: null }), false);
  assert.equal(await copyText("d", {}), false);
});

test("the stylesheet goes in once, scoped under .provenance-tab", () => {
  const doc = new FakeDocument();
  injectStyle(doc);
  injectStyle(doc);
  assert.equal(doc.head.children.length, 1);
  const style = doc.getElementById("provenance-style");
  const rules = style.textContent.split("}").map((r) => r.trim()).filter(Boolean);
  for (const rule of rules) assert.match(rule, /^\.provenance-(tab|floating)/, rule);
  assert.match(style.textContent, /var\(--comfy-menu-bg, /);
});
