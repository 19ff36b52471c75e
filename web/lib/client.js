/** The one client of the pack's routes: JSON in, JSON out, and every {"error"} answer turned into a thrown Error. */

import {
  ROUTES, diffPath, inspectPath, recordPath, reproduceBody, searchPath,
} from "./routes.js";
import { oneLine } from "./text.js";

export class RouteError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "RouteError";
    this.status = status;
  }
}

/** The JSON body of a fetch Response; throws RouteError on {"error"}, an HTTP failure or a body that is not JSON. */
export async function readAnswer(response) {
  const status = Number(response?.status ?? 0);
  const text = await response.text();
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // aiohttp answers an unknown route with "404: Not Found" text: say that, not "Unexpected token".
    const what = response.ok ? "answer is not JSON" : `HTTP ${status}`;
    throw new RouteError(oneLine(`${what}: ${text}`), status);
  }
  if (body && typeof body === "object" && !Array.isArray(body) && "error" in body) {
    throw new RouteError(oneLine(body.error || `HTTP ${status}`), status);
  }
  if (!response.ok) throw new RouteError(`HTTP ${status}`, status);
  return body;
}

/**
 * The routes' client over `fetchApi(route, init)`: ComfyUI's `api.fetchApi` in the browser (it adds the
 * /api prefix and the user header), a fake in the tests.
 */
export function createClient(fetchApi) {
  const call = async (route, init) => {
    let response;
    try {
      response = await fetchApi(route, init);
    } catch (err) {
      throw new RouteError(oneLine(`cannot reach ComfyUI: ${err?.message ?? err}`), 0);
    }
    return readAnswer(response);
  };
  const post = (route, data) => call(route, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
  return {
    status: () => call(ROUTES.status),
    search: (filters, page) => call(searchPath(filters, page)),
    record: (view) => call(recordPath(view)),
    inspect: (file) => call(inspectPath(file?.name), {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: file,
    }),
    reproduce: (view, dryRun) => post(ROUTES.reproduce, reproduceBody(view, dryRun)),
    diff: (a, b) => call(diffPath(a, b)),
  };
}
