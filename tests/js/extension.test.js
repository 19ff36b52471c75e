import assert from "node:assert/strict";
import test from "node:test";

import { createExtension, showFallback } from "../../web/lib/extension.js";
import { DEFAULT_TARGETS, SETTINGS, applySaveDefaults, parseTargets } from "../../web/lib/settings.js";
import { VERSION } from "../../web/lib/version.js";
import { byTestId } from "./fakedom.js";
import { fakeFrontend, saveNode } from "./fakeapp.js";

const quiet = { warn: () => {} };

test("settings: the exact ids, types and defaults the Python side and users rely on", () => {
  const byId = Object.fromEntries(SETTINGS.map((s) => [s.id, s]));
  assert.deepEqual(Object.keys(byId), [
    "Provenance.SaveDefaults.Format", "Provenance.SaveDefaults.Targets", "Provenance.SaveDefaults.LoraTags",
    "Provenance.Catalogue.Enabled", "Provenance.Gallery.PageSize",
  ]);
  assert.deepEqual([byId["Provenance.SaveDefaults.Format"].type, byId["Provenance.SaveDefaults.Format"].defaultValue], ["combo", "png"]);
  assert.deepEqual(byId["Provenance.SaveDefaults.Format"].options, ["png", "jpeg", "webp"]);
  assert.deepEqual([byId["Provenance.SaveDefaults.Targets"].type, byId["Provenance.SaveDefaults.Targets"].defaultValue], ["text", ""]);
  assert.deepEqual([byId["Provenance.SaveDefaults.LoraTags"].type, byId["Provenance.SaveDefaults.LoraTags"].defaultValue], ["boolean", true]);
  assert.deepEqual([byId["Provenance.Catalogue.Enabled"].type, byId["Provenance.Catalogue.Enabled"].defaultValue], ["boolean", true]);
  assert.deepEqual([byId["Provenance.Gallery.PageSize"].type, byId["Provenance.Gallery.PageSize"].defaultValue], ["number", 24]);
  for (const s of SETTINGS) assert.ok(s.name && s.tooltip, s.id);
});

test("the extension: name, settings, and an about badge with the version", () => {
  const { app, api, doc } = fakeFrontend();
  const ext = createExtension({ app, api, doc, log: quiet });
  assert.equal(ext.name, "comfyui.provenance");
  assert.equal(ext.settings, SETTINGS);
  assert.deepEqual(ext.aboutPageBadges, [{ label: `Provenance v${VERSION}`, url: "https://github.com/", icon: "pi pi-verified" }]);
});

test("setup adds the sidebar tab; render builds the panel once and refreshes it later", async () => {
  const { app, api, doc, recorded } = fakeFrontend();
  const ext = createExtension({ app, api, doc, log: quiet });
  await ext.setup();
  assert.equal(ext._provenance.placement, "sidebar");
  const [tab] = recorded.tabs;
  assert.deepEqual({ id: tab.id, title: tab.title, icon: tab.icon, tooltip: tab.tooltip, type: tab.type },
    { id: "provenance", title: "Provenance", icon: "pi pi-verified", tooltip: "Provenance", type: "custom" });
  const target = doc.createElement("div");
  tab.render(target);
  await ext._provenance.panel.settled();
  const root = byTestId(target, "provenance-tab");
  assert.match(byTestId(root, "provenance-status").textContent, /Hooks off/);
  assert.ok(doc.getElementById("provenance-style"));
  const again = doc.createElement("div");
  tab.render(again);
  assert.equal(again.children[0], root, "the same panel moves into the new element");
  assert.ok(recorded.fetched.filter((r) => r === "/provenance/status").length >= 3);
});

test("no registerSidebarTab (older frontend): a floating button opens the same panel, nothing throws", async () => {
  const { app, api, doc } = fakeFrontend({ sidebar: false });
  const ext = createExtension({ app, api, doc, log: quiet });
  await ext.setup();
  assert.equal(ext._provenance.placement, "floating");
  const open = byTestId(doc.body, "provenance-open");
  open.click();
  assert.ok(byTestId(doc.body, "provenance-tab"));
  open.click();
  assert.equal(doc.body.querySelector(".provenance-floating-panel").hidden, true);
  open.click();
  assert.equal(doc.body.querySelector(".provenance-floating-panel").hidden, false);
});

test("no extensionManager at all and no document body: setup still resolves", async () => {
  const warned = [];
  const ext = createExtension({
    app: {}, api: { fetchApi: async () => { throw new Error("offline"); } }, doc: {}, log: { warn: (m) => warned.push(String(m)) },
  });
  assert.equal(await ext.setup(), null);
  assert.equal(ext._provenance.placement, "none");
  assert.ok(warned.some((m) => m.includes("offline")));
});

test("a server of another version shows in the badge", async () => {
  const { app, api, doc } = fakeFrontend();
  api.fetchApi = async () => ({ ok: true, status: 200, text: async () => JSON.stringify({ pack_version: "9.9.9", hooks: {} }) });
  const ext = createExtension({ app, api, doc, log: quiet });
  await ext.setup();
  assert.equal(ext.aboutPageBadges[0].label, `Provenance v9.9.9 (web v${VERSION})`);
});

test("provenance.fallback events become a warning toast for 8 s", async () => {
  const { app, api, doc, recorded } = fakeFrontend();
  const ext = createExtension({ app, api, doc, log: quiet });
  await ext.setup();
  api.dispatch("provenance.fallback", {
    prompt_id: "p", node_id: "9", files: [{ filename: "x_00001_.jpg", subfolder: "", type: "output" }],
    reasons: [{ kind: "sidecar", detail: "record went to sidecar:json" }],
  });
  assert.deepEqual(recorded.toasts, [{ severity: "warn", summary: "Provenance", detail: "x_00001_.jpg: record went to sidecar:json", life: 8000 }]);
  // The same reason from the next save is not toasted again; a new one is, alone.
  api.dispatch("provenance.fallback", {
    files: [{ filename: "x_00002_.jpg" }], reasons: [{ kind: "sidecar", detail: "record went to sidecar:json" }],
  });
  assert.equal(recorded.toasts.length, 1);
  api.dispatch("provenance.fallback", {
    files: [{ filename: "x_00003_.jpg" }],
    reasons: [{ kind: "sidecar", detail: "record went to sidecar:json" }, { kind: "hash_pending", detail: "model hash pending" }],
  });
  assert.equal(recorded.toasts.length, 2);
  assert.equal(recorded.toasts[1].detail, "x_00003_.jpg: model hash pending");
});

test("without a toast service the fallback goes to console.warn", () => {
  const warned = [];
  const text = showFallback({ extensionManager: {} }, { reasons: ["r"] }, { warn: (m) => warned.push(m) });
  assert.equal(text, "r");
  assert.deepEqual(warned, ["Provenance: r"]);
});

test("a save node the user adds gets the settings' defaults", () => {
  const { app, api, doc } = fakeFrontend({ settings: {
    "Provenance.SaveDefaults.Format": "webp", "Provenance.SaveDefaults.LoraTags": false,
    "Provenance.SaveDefaults.Targets": "record, xmp,sidecar_json,bogus",
  } });
  const ext = createExtension({ app, api, doc, log: quiet });
  const node = saveNode();
  ext.nodeCreated(node);
  assert.equal(node.values().format, "webp");
  assert.equal(node.values().lora_tags, false);
  assert.deepEqual(node.values().targets, ["record", "xmp", "sidecar_json"], "unknown targets dropped for the multi-select");
  const text = saveNode({ targetsAsList: false });
  ext.nodeCreated(text);
  assert.equal(text.values().targets, "record,xmp,sidecar_json,bogus", "the V1 text box gets the text; the node validates it");
});

test("a node loaded from a workflow keeps its saved values: configure runs after nodeCreated", () => {
  const { app, api, doc } = fakeFrontend({ settings: { "Provenance.SaveDefaults.Format": "jpeg", "Provenance.SaveDefaults.LoraTags": false } });
  const ext = createExtension({ app, api, doc, log: quiet });
  const node = saveNode();
  // The frontend's order for a loaded workflow: construct (nodeCreated inside), then configure(saved).
  ext.nodeCreated(node);
  node.configure({ widgets_values: ["mine", "png", 90, true, ["record"], false, true, "{}"] });
  assert.deepEqual(node.values(), {
    filename_prefix: "mine", format: "png", quality: 90, lossless: true, targets: ["record"], prefer_runtime: false, lora_tags: true, options: "{}",
  });
  assert.equal(ext.nodeCreated.constructor.name, "Function", "synchronous: an async hook would run after configure");
});

test("other nodes, missing widgets, unset or odd settings are left alone", () => {
  const get = (values) => (id) => values[id];
  const other = saveNode({ type: "SaveImage" });
  assert.deepEqual(applySaveDefaults(other, get({ "Provenance.SaveDefaults.Format": "webp" })), []);
  assert.equal(other.values().format, "png");
  const node = saveNode();
  node.widgets = node.widgets.filter((w) => w.name !== "targets");
  assert.deepEqual(applySaveDefaults(node, get({ "Provenance.SaveDefaults.Targets": "xmp", "Provenance.SaveDefaults.Format": "gif" })), []);
  assert.equal(node.values().format, "png", "not one of the widget's choices");
  assert.deepEqual(applySaveDefaults(saveNode(), get({})), []);
  assert.deepEqual(applySaveDefaults(null, get({})), []);
  const { app, api, doc } = fakeFrontend();
  app.extensionManager.setting.get = () => { throw new Error("store not ready"); };
  createExtension({ app, api, doc, log: quiet }).nodeCreated(saveNode());
});

test("targets text: commas or spaces, lowercased, no duplicates", () => {
  assert.deepEqual(parseTargets(" Record,xmp  xmp,, "), ["record", "xmp"]);
  assert.deepEqual(parseTargets(""), []);
  assert.deepEqual(parseTargets(undefined), []);
});

test("a new node's empty multi-select gets the declared default targets (frontend 1.49.6 leaves it empty)", () => {
  const get = () => undefined;
  const declared = saveNode({ type: "ProvenanceSaveVideo" });
  declared.widgets.find((w) => w.name === "targets").value = [];
  declared.constructor = { nodeData: { input: { optional: { targets: ["COMBO", { default: ["comfyui", "record"], multiselect: true }] } } } };
  assert.deepEqual(applySaveDefaults(declared, get), ["targets"]);
  assert.deepEqual(declared.values().targets, ["comfyui", "record"]);
  const bare = saveNode();
  bare.widgets.find((w) => w.name === "targets").value = [];
  applySaveDefaults(bare, get);
  assert.deepEqual(bare.values().targets, DEFAULT_TARGETS);
  const chosen = saveNode();
  chosen.widgets.find((w) => w.name === "targets").value = ["xmp"];
  assert.deepEqual(applySaveDefaults(chosen, get), [], "a selection is never replaced");
});
