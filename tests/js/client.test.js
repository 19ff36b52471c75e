import assert from "node:assert/strict";
import test from "node:test";

import { RouteError, createClient, readAnswer } from "../../web/lib/client.js";
import { fixture } from "./fixtures.js";

/** A Response-like answer; readAnswer needs only ok, status and text(). */
function answer(status, body) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return { ok: status >= 200 && status < 300, status, text: async () => text };
}

function recording(reply) {
  const calls = [];
  const fetchApi = async (route, init) => {
    calls.push({ route, init });
    return typeof reply === "function" ? reply(route, init) : reply;
  };
  return { calls, client: createClient(fetchApi) };
}

test("a JSON answer comes back as data", async () => {
  const status = fixture("status_off");
  const { calls, client } = recording(answer(200, status));
  assert.deepEqual(await client.status(), status);
  assert.equal(calls[0].route, "/provenance/status");
  assert.equal(calls[0].init, undefined);
});

test('an {"error"} answer throws its message as one line, with the HTTP status', async () => {
  const { client } = recording(answer(400, { error: "limit must be 1..200,\n   got 500" }));
  await assert.rejects(client.search({}, { limit: 5 }), (err) => {
    assert.ok(err instanceof RouteError);
    assert.equal(err.message, "limit must be 1..200, got 500");
    assert.equal(err.status, 400);
    return true;
  });
});

test('an {"error"} answer throws even with status 200', async () => {
  await assert.rejects(readAnswer(answer(200, { error: "no record" })), /^RouteError: no record$/);
});

test("a page that is not JSON (aiohttp's 404) says the HTTP status, not a parse error", async () => {
  await assert.rejects(readAnswer(answer(404, "404: Not Found")), { message: "HTTP 404: 404: Not Found" });
  await assert.rejects(readAnswer(answer(200, "<html>")), { message: "answer is not JSON: <html>" });
  await assert.rejects(readAnswer(answer(500, "")), { message: "HTTP 500" });
});

test("a long error is cut to one short line", async () => {
  await assert.rejects(readAnswer(answer(500, { error: "x".repeat(2000) })), (err) => err.message.length <= 300);
});

test("a failed fetch becomes a RouteError", async () => {
  const client = createClient(async () => {
    throw new TypeError("Failed to fetch");
  });
  await assert.rejects(client.status(), { name: "RouteError", message: "cannot reach ComfyUI: Failed to fetch" });
});

test("inspect posts the file itself as octet-stream under its name", async () => {
  const { calls, client } = recording(answer(200, fixture("inspect_hostile")));
  const file = { name: "my <file>.jpg", size: 3 };
  await client.inspect(file);
  assert.equal(calls[0].route, "/provenance/inspect?name=my+%3Cfile%3E.jpg");
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.body, file);
  assert.equal(calls[0].init.headers["Content-Type"], "application/octet-stream");
});

test("reproduce posts JSON; record and diff are GETs", async () => {
  const { calls, client } = recording(answer(200, { report: { status: "checked" } }));
  const view = { filename: "a.png", subfolder: "", type: "output" };
  await client.reproduce(view, true);
  assert.equal(calls[0].route, "/provenance/reproduce");
  assert.deepEqual(JSON.parse(calls[0].init.body), { filename: "a.png", subfolder: "", type: "output", dry_run: true });
  assert.equal(calls[0].init.headers["Content-Type"], "application/json");
  await client.record(view);
  assert.equal(calls[1].route, "/provenance/record?filename=a.png&subfolder=&type=output");
  await client.diff(view, { filename: "b.png" });
  assert.match(calls[2].route, /^\/provenance\/diff\?a=a\.png&a_subfolder=&a_type=output&b=b\.png/);
});
