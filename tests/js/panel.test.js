import assert from "node:assert/strict";
import test from "node:test";

import { RouteError } from "../../web/lib/client.js";
import { createPanel } from "../../web/lib/panel.js";
import { FakeDocument, allByTestId, byTestId } from "./fakedom.js";
import { fixture } from "./fixtures.js";

/** A client answering from the fixtures, recording every call; `fail` makes one method throw. */
function fakeClient(fail = {}) {
  const calls = [];
  const page = fixture("search_page");
  const answer = (name, value) => (...args) => {
    calls.push([name, ...args]);
    if (fail[name]) return Promise.reject(new RouteError(fail[name], 400));
    return Promise.resolve(typeof value === "function" ? value(...args) : value);
  };
  return {
    calls,
    status: answer("status", fixture("status_off")),
    search: answer("search", (filters, { offset }) => ({
      ...page, offset, next_offset: offset >= 3 ? null : offset + 3, results: offset >= 3 ? page.results.slice(0, 1) : page.results,
    })),
    record: answer("record", fixture("inspect_lora")),
    inspect: answer("inspect", fixture("inspect_hostile")),
    reproduce: answer("reproduce", (view, dry) => (dry
      ? { report: { status: "checked", notes: ["ok"], checks: { differences: [], warnings: ["no hash"] } } }
      : { report: { status: "queued", prompt_id: "prompt-7", notes: [], checks: {} } })),
    diff: answer("diff", fixture("diff")),
  };
}

async function mounted({ fail, settings = {}, app = {} } = {}) {
  const doc = new FakeDocument();
  const client = fakeClient(fail);
  const panel = createPanel({ doc, client, app, apiURL: (p) => `/api${p}`, getSetting: (id) => settings[id] });
  await panel.mount();
  return { doc, client, panel, root: panel.element };
}

test("mounting shows the status line and the first page of tiles", async () => {
  const { root, client } = await mounted({ settings: { "Provenance.Gallery.PageSize": 3 } });
  assert.equal(root.getAttribute("data-testid"), "provenance-tab");
  assert.ok(root.classList.contains("provenance-tab"));
  const status = byTestId(root, "provenance-status");
  assert.match(status.textContent, /^v0\.1\.0 · Hooks off: PROVENANCE_HOOKS/);
  assert.equal(status.getAttribute("data-state"), "off");
  assert.equal(byTestId(root, "provenance-version").textContent, "v0.1.0");
  assert.equal(allByTestId(root, "provenance-tile").length, 3);
  assert.deepEqual(client.calls.find((c) => c[0] === "search").slice(1), [
    { text: "", model: "", lora: "", since: "", until: "" }, { limit: 3, offset: 0 },
  ]);
  assert.equal(byTestId(root, "provenance-error").textContent, "");
  assert.equal(byTestId(root, "provenance-prev").disabled, true);
});

test("search with filters, then next and prev pages", async () => {
  const { root, client, panel } = await mounted();
  byTestId(root, "provenance-search").value = "teddy bear";
  byTestId(root, "provenance-filter-model").value = "dreamshaper";
  byTestId(root, "provenance-search-button").click();
  await panel.settled();
  const last = client.calls.at(-1);
  assert.equal(last[1].text, "teddy bear");
  assert.equal(last[1].model, "dreamshaper");
  assert.equal(last[2].limit, 24);
  byTestId(root, "provenance-next").click();
  await panel.settled();
  assert.equal(client.calls.at(-1)[2].offset, 3);
  assert.equal(allByTestId(root, "provenance-tile").length, 1);
  assert.equal(byTestId(root, "provenance-next").disabled, true);
  assert.equal(byTestId(root, "provenance-page").textContent, "4–4");
  byTestId(root, "provenance-prev").click();
  await panel.settled();
  assert.equal(client.calls.at(-1)[2].offset, 0);
});

test("a catalogue that is off or missing: the note shows, nothing breaks", async () => {
  const { root, panel, client } = await mounted({ settings: { "Provenance.Catalogue.Enabled": false } });
  client.search = async () => ({ results: [], limit: 24, offset: 0, next_offset: null, note: "no catalogue at /u/catalogue.sqlite yet" });
  await panel.search(0);
  const note = byTestId(root, "provenance-gallery-note").textContent;
  assert.match(note, /catalogue is off/);
  assert.match(note, /no catalogue at \/u\/catalogue.sqlite yet/);
  assert.equal(allByTestId(root, "provenance-tile").length, 0);
  assert.equal(byTestId(root, "provenance-next").disabled, true);
});

test("clicking a tile opens its record in the inspector", async () => {
  const { root, client, panel } = await mounted();
  const tile = allByTestId(root, "provenance-tile")[1];
  tile.click();
  await panel.settled();
  const call = client.calls.find((c) => c[0] === "record");
  assert.deepEqual(call[1], { filename: tile.getAttribute("data-filename"), subfolder: "", type: "output" });
  const inspector = byTestId(root, "provenance-inspector");
  assert.equal(byTestId(inspector, "provenance-seed").textContent, "261660645921551");
});

test("reproduce: the dry run's check, then Queue posts for real and shows the prompt id", async () => {
  const { root, client, panel } = await mounted();
  await panel.open({ filename: "lora_00001_.png", subfolder: "", type: "output" });
  byTestId(root, "provenance-reproduce").click();
  await panel.settled();
  const result = byTestId(root, "provenance-reproduce-result");
  assert.match(result.textContent, /status: checked/);
  assert.match(result.textContent, /warnings: no hash/);
  byTestId(root, "provenance-queue").click();
  await panel.settled();
  const posts = client.calls.filter((c) => c[0] === "reproduce");
  assert.deepEqual(posts.map((c) => c[2]), [true, false]);
  assert.deepEqual(posts[1][1], { filename: "lora_00001_.png", subfolder: "", type: "output" });
  assert.match(result.textContent, /prompt id: prompt-7/);
  assert.equal(result.getAttribute("data-status"), "queued");
});

test("diff: the next tile clicked is compared with the open file", async () => {
  const { root, client, panel } = await mounted();
  await panel.open({ filename: "lora_00001_.png", subfolder: "", type: "output" });
  byTestId(root, "provenance-diff").click();
  assert.equal(byTestId(root, "provenance-diff").getAttribute("aria-pressed"), "true");
  assert.match(byTestId(root, "provenance-diff-hint").textContent, /lora_00001_.png/);
  const tile = allByTestId(root, "provenance-tile")[2];
  tile.click();
  await panel.settled();
  const call = client.calls.find((c) => c[0] === "diff");
  assert.deepEqual(call[1], { filename: "lora_00001_.png", subfolder: "", type: "output" });
  assert.equal(call[2].filename, tile.getAttribute("data-filename"));
  assert.ok(byTestId(root, "provenance-diff-result").querySelector("table"));
  assert.equal(byTestId(root, "provenance-diff-hint").textContent, "");
  assert.equal(client.calls.filter((c) => c[0] === "record").length, 1, "the tile did not open a record");
  // Clicking Diff twice leaves diff mode: the next tile opens again.
  byTestId(root, "provenance-diff").click();
  byTestId(root, "provenance-diff").click();
  allByTestId(root, "provenance-tile")[0].click();
  await panel.settled();
  assert.equal(client.calls.filter((c) => c[0] === "record").length, 2);
});

test("a dropped file is posted and inspected; reproduce and diff stay off", async () => {
  const { root, client, panel } = await mounted();
  const file = { name: "hostile_00001_.jpg", size: 10 };
  const drop = byTestId(root, "provenance-drop");
  const over = { type: "dragover" };
  drop.dispatchEvent(over);
  assert.equal(over.defaultPrevented, true, "dragover must be cancelled for drop to fire");
  const ev = { type: "drop", dataTransfer: { files: [file] } };
  drop.dispatchEvent(ev);
  assert.equal(ev.propagationStopped, true, "the canvas must not load the file too");
  await panel.settled();
  assert.equal(client.calls.find((c) => c[0] === "inspect")[1], file);
  assert.equal(byTestId(root, "provenance-reproduce").disabled, true);
  byTestId(root, "provenance-reproduce").click();
  await panel.settled();
  assert.equal(client.calls.filter((c) => c[0] === "reproduce").length, 0);
});

test("the hidden file input inspects the chosen file and resets", async () => {
  const { root, client, panel } = await mounted();
  const input = byTestId(root, "provenance-file-input");
  assert.equal(input.type, "file");
  input.files = [{ name: "x.png" }];
  input.value = "C:\\fakepath\\x.png";
  input.dispatchEvent({ type: "change" });
  await panel.settled();
  assert.equal(client.calls.find((c) => c[0] === "inspect")[1].name, "x.png");
  assert.equal(input.value, "");
  assert.ok(byTestId(root, "provenance-inspector"));
});

test("load workflow hands the workflow to the app", async () => {
  const loaded = [];
  const app = { loadGraphData: async (w) => loaded.push(w) };
  const { root, panel } = await mounted({ app });
  await panel.open({ filename: "lora_00001_.png" });
  byTestId(root, "provenance-load-workflow").click();
  await panel.settled();
  assert.equal(loaded.length, 1);
  assert.deepEqual(loaded[0], fixture("inspect_lora").workflow);
  assert.match(byTestId(root, "provenance-notice").textContent, /Loaded the workflow of lora_00001_.png/);
});

test("route errors show in one line and never escape a handler", async () => {
  const { root, panel } = await mounted({ fail: { status: "boom\nsecond line", search: "limit must be 1..200, got 0" } });
  assert.equal(byTestId(root, "provenance-status").textContent, "Hooks: status unknown");
  const error = byTestId(root, "provenance-error");
  assert.ok(["boom second line", "limit must be 1..200, got 0"].includes(error.textContent), error.textContent);
  assert.ok(!error.textContent.includes("\n"));
  byTestId(root, "provenance-search-button").click();
  await panel.settled();
  assert.equal(error.textContent, "limit must be 1..200, got 0");
  const failing = await mounted({ fail: { record: "no such file" } });
  allByTestId(failing.root, "provenance-tile")[0].click();
  await failing.panel.settled();
  assert.equal(byTestId(failing.root, "provenance-error").textContent, "no such file");
  assert.equal(failing.root.querySelector('[data-testid="provenance-inspector"]'), null);
});

test("a thrown app error (loadGraphData) also lands in the error line", async () => {
  const app = { loadGraphData: async () => { throw new Error("graph broken"); } };
  const { root, panel } = await mounted({ app });
  await panel.open({ filename: "lora_00001_.png" });
  byTestId(root, "provenance-load-workflow").click();
  await panel.settled();
  assert.equal(byTestId(root, "provenance-error").textContent, "graph broken");
});

test("a slow earlier search never overwrites a newer page", async () => {
  const { root, client, panel } = await mounted();
  let release;
  const slow = new Promise((r) => { release = r; });
  const search = client.search;
  client.search = async (filters, page) => {
    if (page.offset === 3) {
      await slow;
      return { results: [], limit: 24, offset: 3, next_offset: null };
    }
    return search(filters, page);
  };
  const first = panel.search(3);
  const second = panel.search(0);
  await second;
  release();
  await first;
  assert.equal(allByTestId(root, "provenance-tile").length, 3);
});
