import assert from "node:assert/strict";
import test from "node:test";

import { fixture } from "./fixtures.js";
import {
  diffPath, fileRef, inspectPath, pageSize, paging, query, recordPath, reproduceBody, rowView, searchPath, viewPath,
} from "../../web/lib/routes.js";

test("query leaves out blank, null and undefined values and trims the rest", () => {
  assert.equal(query({ text: "  ", model: null, lora: undefined, since: "" }), "");
  assert.equal(query({ text: " cat ", limit: 24, offset: 0 }), "?text=cat&limit=24&offset=0");
});

test("search paths encode what the user typed and send only known filters", () => {
  const path = searchPath({ text: "a b&c=d", model: "sd/x.safetensors", lora: "ünï", bogus: "x" }, { limit: 5, offset: 10 });
  const url = new URL(path, "http://h");
  assert.equal(url.pathname, "/provenance/search");
  assert.equal(url.searchParams.get("text"), "a b&c=d");
  assert.equal(url.searchParams.get("model"), "sd/x.safetensors");
  assert.equal(url.searchParams.get("lora"), "ünï");
  assert.equal(url.searchParams.get("bogus"), null, "the route answers 400 to unknown parameters");
  assert.deepEqual([...url.searchParams.keys()], ["text", "model", "lora", "limit", "offset"]);
  assert.ok(!path.includes(" ") && !path.includes("&c="), path);
});

test("page sizes stay within what the route accepts", () => {
  assert.equal(pageSize(24), 24);
  assert.equal(pageSize("12"), 12);
  assert.equal(pageSize(0), 24);
  assert.equal(pageSize(-3), 24);
  assert.equal(pageSize("lots"), 24);
  assert.equal(pageSize(5000), 200);
  assert.equal(pageSize(7.9), 7);
  const url = new URL(searchPath({}, { limit: 999, offset: -4 }), "http://h");
  assert.equal(url.searchParams.get("limit"), "200");
  assert.equal(url.searchParams.get("offset"), "0");
});

test("file routes keep an empty subfolder and encode names", () => {
  const view = { filename: "a b#1?.png", subfolder: "", type: "output" };
  assert.equal(recordPath(view), "/provenance/record?filename=a+b%231%3F.png&subfolder=&type=output");
  assert.equal(viewPath(view, { preview: "webp;75" }), "/view?filename=a+b%231%3F.png&subfolder=&type=output&preview=webp%3B75");
  assert.equal(viewPath({ filename: "v.mp4", subfolder: "x/y", type: "temp" }), "/view?filename=v.mp4&subfolder=x%2Fy&type=temp");
  assert.equal(inspectPath("çà & <b>.png"), "/provenance/inspect?name=%C3%A7%C3%A0+%26+%3Cb%3E.png");
  const diff = new URL(diffPath(view, { filename: "b.png", subfolder: "s" }), "http://h");
  assert.deepEqual(Object.fromEntries(diff.searchParams), {
    a: "a b#1?.png", a_subfolder: "", a_type: "output", b: "b.png", b_subfolder: "s", b_type: "output",
  });
});

test("file references default the type to output and stringify", () => {
  assert.deepEqual(fileRef({ filename: "x.png" }), { filename: "x.png", subfolder: "", type: "output" });
  assert.deepEqual(reproduceBody({ filename: "x.png", subfolder: "s", type: "input" }, 1),
    { filename: "x.png", subfolder: "s", type: "input", dry_run: true });
  assert.equal(reproduceBody({ filename: "x.png" }, false).dry_run, false);
});

test("search rows give their view, or one guessed from the path", () => {
  const page = fixture("search_page");
  assert.deepEqual(rowView(page.results[0]), page.results[0].view);
  assert.deepEqual(rowView({ path: "C:\\out\\sub\\x.png" }), { filename: "x.png", subfolder: "", type: "output" });
  assert.equal(rowView({}), null);
});

test("paging: first, middle, last and empty pages", () => {
  const page = fixture("search_page");
  const first = paging(page, 3);
  assert.deepEqual(
    { hasPrev: first.hasPrev, hasNext: first.hasNext, nextOffset: first.nextOffset, label: first.label },
    { hasPrev: false, hasNext: true, nextOffset: 3, label: "1–3" },
  );
  const middle = paging({ ...page, offset: 3, next_offset: 6 }, 3);
  assert.equal(middle.hasPrev, true);
  assert.equal(middle.prevOffset, 0);
  assert.equal(middle.label, "4–6");
  const last = paging({ results: [page.results[0]], limit: 3, offset: 6, next_offset: null }, 3);
  assert.equal(last.hasNext, false);
  assert.equal(last.nextOffset, null);
  assert.equal(last.prevOffset, 3);
  assert.equal(last.label, "7–7");
  assert.equal(paging({ results: [], limit: 24, offset: 0, next_offset: null }).label, "no files");
  assert.equal(paging({ results: [], limit: 24, offset: 48, next_offset: null }).label, "nothing after 48");
  assert.equal(paging({ results: [], limit: 24, offset: 2 }).prevOffset, 0, "never a negative offset");
  assert.equal(paging(null, 10).hasNext, false);
});
