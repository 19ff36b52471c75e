import assert from "node:assert/strict";
import { register } from "node:module";
import test from "node:test";

import { fakeFrontend } from "./fakeapp.js";

register("./frontend-hooks.js", import.meta.url);

test("web/provenance.js registers the extension with the frontend's app, and only that", async () => {
  const frontend = fakeFrontend();
  globalThis.__provenanceFrontend = frontend;
  globalThis.document = frontend.doc;
  globalThis.navigator = {};
  try {
    await import("../../web/provenance.js");
  } finally {
    delete globalThis.document;
    delete globalThis.navigator;
  }
  const [ext] = frontend.recorded.extensions;
  assert.equal(frontend.recorded.extensions.length, 1);
  assert.equal(ext.name, "comfyui.provenance");
  assert.equal(frontend.recorded.tabs.length, 0, "nothing happens before setup");
  await ext.setup();
  assert.equal(frontend.recorded.tabs.length, 1);
  assert.equal(typeof frontend.recorded.listeners["provenance.fallback"], "function");
});
