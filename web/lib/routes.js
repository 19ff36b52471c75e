/** Paths and query strings of the pack's routes and of ComfyUI's /view: pure string building, no fetching. */

export const ROUTES = Object.freeze({
  status: "/provenance/status",
  search: "/provenance/search",
  record: "/provenance/record",
  inspect: "/provenance/inspect",
  reproduce: "/provenance/reproduce",
  diff: "/provenance/diff",
  view: "/view",
});

// The search route answers 400 to any parameter it does not know, so only these are ever sent.
export const SEARCH_FILTERS = Object.freeze(["text", "model", "lora", "since", "until"]);
export const PAGE_SIZE = 24;
export const MAX_PAGE_SIZE = 200; // the route's own cap on limit

/** "?a=1&b=x" of the entries that have a value (null, undefined and blank strings left out); "" if none. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, raw] of Object.entries(params ?? {})) {
    if (raw === null || raw === undefined) continue;
    const value = typeof raw === "string" ? raw.trim() : String(raw);
    if (value !== "") search.append(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A page size the route accepts, whatever the setting holds. */
export function pageSize(value) {
  const n = Math.floor(Number(value));
  if (!Number.isFinite(n) || n < 1) return PAGE_SIZE;
  return Math.min(n, MAX_PAGE_SIZE);
}

export function searchPath(filters, { limit = PAGE_SIZE, offset = 0 } = {}) {
  const params = {};
  for (const key of SEARCH_FILTERS) params[key] = filters?.[key];
  params.limit = pageSize(limit);
  params.offset = Math.max(0, Math.floor(Number(offset) || 0));
  return ROUTES.search + query(params);
}

/** {filename, subfolder, type} as ComfyUI names a file in its input/output/temp folders. */
export function fileRef(view) {
  return {
    filename: String(view?.filename ?? ""),
    subfolder: String(view?.subfolder ?? ""),
    type: String(view?.type || "output"),
  };
}

// Unlike query(), these keep an empty subfolder: "" is a real value (the folder's top level).
function fileQuery(pairs) {
  return "?" + new URLSearchParams(pairs).toString();
}

export function recordPath(view) {
  const f = fileRef(view);
  return ROUTES.record + fileQuery([["filename", f.filename], ["subfolder", f.subfolder], ["type", f.type]]);
}

/** ComfyUI's /view URL of a file; `preview` ("webp;75") asks ComfyUI for a small re-encoded image. */
export function viewPath(view, { preview } = {}) {
  const f = fileRef(view);
  const pairs = [["filename", f.filename], ["subfolder", f.subfolder], ["type", f.type]];
  if (preview) pairs.push(["preview", preview]);
  return ROUTES.view + fileQuery(pairs);
}

export function inspectPath(name) {
  return ROUTES.inspect + fileQuery([["name", String(name ?? "")]]);
}

export function diffPath(a, b) {
  const fa = fileRef(a);
  const fb = fileRef(b);
  return ROUTES.diff + fileQuery([
    ["a", fa.filename], ["a_subfolder", fa.subfolder], ["a_type", fa.type],
    ["b", fb.filename], ["b_subfolder", fb.subfolder], ["b_type", fb.type],
  ]);
}

/** The body of POST /provenance/reproduce for a file. */
export function reproduceBody(view, dryRun) {
  return { ...fileRef(view), dry_run: Boolean(dryRun) };
}

/** A search row's /view reference: the route's `view`, else one guessed from the path's last part. */
export function rowView(row) {
  if (row?.view && typeof row.view === "object" && row.view.filename) return fileRef(row.view);
  const name = String(row?.path ?? "").split(/[\\/]/).pop();
  return name ? fileRef({ filename: name }) : null;
}

/** Paging state of one search answer: what prev/next ask for and whether they can. */
export function paging(answer, limit) {
  const size = pageSize(answer?.limit ?? limit);
  const offset = Math.max(0, Number(answer?.offset) || 0);
  const count = Array.isArray(answer?.results) ? answer.results.length : 0;
  const next = answer?.next_offset;
  return {
    offset,
    limit: size,
    hasPrev: offset > 0,
    prevOffset: Math.max(0, offset - size),
    hasNext: next !== null && next !== undefined && Number.isFinite(Number(next)),
    nextOffset: next === null || next === undefined ? null : Number(next),
    label: count ? `${offset + 1}–${offset + count}` : offset ? `nothing after ${offset}` : "no files",
  };
}
