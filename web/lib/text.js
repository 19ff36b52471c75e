/** Values as display text. Records are hostile input: everything here returns plain strings for textContent. */

const LINE_MAX = 300;

/** Anything as one short line: errors and toasts are one line. */
export function oneLine(text, max = LINE_MAX) {
  const line = String(text ?? "").replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A record value as text: "" for nothing, numbers as JSON writes them, lists joined, objects as compact JSON. */
export function show(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (Array.isArray(value) && value.every((v) => v === null || typeof v !== "object")) {
    return value.map(show).join(", ");
  }
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

export function isBlank(value) {
  if (value === null || value === undefined || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === "object") return Object.keys(value).length === 0;
  return false;
}

/** How big a value is, in words: "12 items", "3 keys", "40 characters", or the value itself when short. */
export function sizeOf(value) {
  if (value === null || value === undefined) return "none";
  if (Array.isArray(value)) return plural(value.length, "item");
  if (typeof value === "object") return plural(Object.keys(value).length, "key");
  if (typeof value === "string") return value.length <= 40 ? value : plural(value.length, "character");
  return String(value);
}

export function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** The last part of a path, either separator. */
export function baseName(path) {
  return String(path ?? "").split(/[\\/]/).pop();
}
