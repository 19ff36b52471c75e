/** `provenance diff --json` output (GET /provenance/diff's "diff") as table rows, read defensively. */

import { show } from "./text.js";

const SIDE_KEYS = new Set(["a", "b", "identical"]);
// Keys that say where a change is (a pass, a node, a model); the rest say what changed.
const WHERE_KEYS = ["pass", "node_id", "node", "class_type", "role", "name", "index", "image"];
const FIELD_KEYS = ["field", "input", "path", "key"];
const BEFORE_KEYS = ["a", "before", "old"];
const AFTER_KEYS = ["b", "after", "new"];

// A graph link ["11", 0] reads as JSON, not as the list "11, 0".
const cell = (value) => (Array.isArray(value) ? JSON.stringify(value) : show(value));

const first = (item, keys) => {
  const key = keys.find((k) => k in item);
  return key === undefined ? undefined : item[key];
};

function where(item) {
  const parts = [];
  for (const key of WHERE_KEYS) {
    if (!(key in item) || item[key] === null || item[key] === undefined) continue;
    const value = show(item[key]);
    if (key === "pass") parts.push(`pass ${Number.isInteger(item[key]) ? item[key] + 1 : value}`);
    else if (key === "node_id" || key === "node") parts.push(`node ${value}`);
    else parts.push(value);
  }
  return [...new Set(parts)].join(" · ");
}

/** One change object as a row, or null when it has nothing a row can show. */
export function changeRow(section, item) {
  if (!item || typeof item !== "object" || Array.isArray(item)) {
    return { section, where: "", field: "", change: "", a: cell(item), b: "" };
  }
  const known = [...WHERE_KEYS, ...FIELD_KEYS, ...BEFORE_KEYS, ...AFTER_KEYS, "change"];
  if (!known.some((k) => k in item)) return null;
  return {
    section,
    where: where(item),
    field: show(first(item, FIELD_KEYS) ?? ""),
    change: show(item.change ?? ""),
    a: cell(first(item, BEFORE_KEYS)),
    b: cell(first(item, AFTER_KEYS)),
  };
}

/**
 * {identical, rows, unknown}: a row per change in every section (nested sections such as graph.added
 * become "graph added"); `unknown` lists the sections no row could be made of, so the caller can also
 * show them as JSON.
 */
export function diffRows(answer) {
  const diff = answer && typeof answer === "object" && answer.diff && typeof answer.diff === "object" ? answer.diff : answer;
  if (!diff || typeof diff !== "object" || Array.isArray(diff)) return { identical: false, rows: [], unknown: ["diff"] };
  const rows = [];
  const unknown = [];
  const walk = (section, value, depth) => {
    if (Array.isArray(value)) {
      for (const item of value) {
        const row = changeRow(section, item);
        if (row) rows.push(row);
        else if (!unknown.includes(section)) unknown.push(section);
      }
    } else if (value && typeof value === "object" && depth < 2) {
      for (const [key, inner] of Object.entries(value)) walk(`${section} ${key}`, inner, depth + 1);
    } else if (value !== null && value !== undefined && value !== false) {
      unknown.push(section);
    }
  };
  for (const [key, value] of Object.entries(diff)) {
    if (!SIDE_KEYS.has(key)) walk(key, value, 0);
  }
  return { identical: diff.identical === true, rows, unknown };
}
