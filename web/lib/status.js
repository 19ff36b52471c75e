/** One-line summaries of GET /provenance/status and of the save node's "provenance.fallback" events. */

import { baseName, oneLine, plural, show } from "./text.js";

function hookEntries(status) {
  const hooks = status?.hooks;
  if (!hooks || typeof hooks !== "object") return [];
  return Object.entries(hooks).filter(([, h]) => h && typeof h === "object");
}

/** The reason a hook gives for not running: disabled after failures, skipped, or a conflict with another pack. */
function hookReason(hook) {
  return show(hook.disabled_reason || hook.skipped || hook.conflict || "");
}

/**
 * {state, text} of the hooks: "on" (every hook active), "partial" (some disabled), "disabled" (installed but
 * none active), "off" (not enabled), "unknown" (no answer).
 */
export function hookStatus(status) {
  if (!status || typeof status !== "object") return { state: "unknown", text: "Hooks: status unknown" };
  const hooks = hookEntries(status);
  const active = hooks.filter(([, h]) => h.active).map(([key]) => key);
  const broken = hooks.filter(([, h]) => !h.active && (h.installed || h.disabled));
  const brokenText = broken.map(([key, h]) => (hookReason(h) ? `${key} (${hookReason(h)})` : key)).join(", ");
  if (status.active || active.length) {
    if (!broken.length) return { state: "on", text: `Hooks on: ${active.join(", ") || "all"}` };
    return { state: "partial", text: `Hooks on: ${active.join(", ")}; disabled: ${brokenText}` };
  }
  if (status.installed || broken.length) {
    return { state: "disabled", text: `Hooks disabled: ${brokenText || "no hook is active"}` };
  }
  const reasons = [...new Set(hooks.map(([, h]) => hookReason(h)).filter(Boolean))];
  if (status.enabled_by_env === false) {
    return { state: "off", text: `Hooks off: ${reasons[0] || "not enabled"}` };
  }
  return { state: "off", text: `Hooks not installed${reasons.length ? `: ${reasons.join("; ")}` : ""}` };
}

/** The catalogue part of the line: off, or the writers' counts summed over every location. */
export function catalogueStatus(status) {
  if (status?.catalogue_enabled === false) return "catalogue off";
  const writers = status?.catalogue && typeof status.catalogue === "object" ? Object.values(status.catalogue) : [];
  if (!writers.length) return "catalogue on";
  const sum = (key) => writers.reduce((n, w) => n + (Number(w?.[key]) || 0), 0);
  const parts = [`${sum("indexed")} indexed`];
  if (sum("queued")) parts.push(`${sum("queued")} queued`);
  if (sum("failed")) parts.push(`${sum("failed")} failed`);
  const error = writers.map((w) => w?.last_error).find(Boolean);
  if (error) parts.push(`last error: ${show(error)}`);
  return `catalogue: ${parts.join(", ")}`;
}

/** {state, text}: the whole status line, e.g. "v0.1.0 · Hooks off: … · catalogue on". */
export function statusLine(status) {
  const hooks = hookStatus(status);
  if (hooks.state === "unknown") return hooks;
  const version = status.pack_version ? `v${show(status.pack_version)}` : "";
  const text = [version, hooks.text, catalogueStatus(status)].filter(Boolean).join(" · ");
  return { state: hooks.state, text: oneLine(text, 400) };
}

/**
 * The reasons an event gives, as lines. The save node sends {"reasons": [{kind, detail}]}
 * (nodes/save_image.py fallback_event); plain strings and placements ({target, location, status,
 * reason}) are read too, so an older or newer sender still gives a useful line.
 */
function reasonsOf(detail) {
  const lists = [detail.reasons, detail.fallbacks, detail.placements, detail.embedding];
  const reasons = [];
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      if (typeof item === "string") reasons.push(item);
      else if (item && typeof item === "object" && item.status !== "written") {
        if (item.detail) {
          reasons.push(show(item.detail));
          continue;
        }
        const where = [item.target, item.location].filter(Boolean).map(show).join(" → ");
        const why = show(item.reason || item.message || item.status || item.kind || "");
        if (where || why) reasons.push(where && why ? `${where}: ${why}` : where || why);
      }
    }
  }
  for (const key of ["reason", "message"]) {
    if (typeof detail[key] === "string" && detail[key]) reasons.push(detail[key]);
  }
  return reasons;
}

/** The file an event is about: the first of its files (with how many others), or its one filename. */
function fileOf(detail) {
  const files = Array.isArray(detail.files) ? detail.files : [];
  if (files.length) {
    const first = files[0];
    const name = baseName(typeof first === "string" ? first : first?.filename ?? "");
    return files.length > 1 ? `${name} and ${plural(files.length - 1, "more file")}` : name;
  }
  return baseName(detail.filename || detail.file || detail.path || "");
}

/**
 * The event with only the reasons not toasted before in this page (`seen` remembers them), or null
 * when nothing is new: a WebM's XMP goes to a sidecar on every save, and one toast says so.
 */
export function unseenReasons(detail, seen) {
  if (!detail || typeof detail !== "object" || !Array.isArray(detail.reasons)) return detail ?? null;
  const fresh = detail.reasons.filter((r) => {
    const key = typeof r === "string" ? r : `${r?.kind ?? ""}\u0000${r?.detail ?? ""}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return fresh.length ? { ...detail, reasons: fresh } : null;
}

/** The toast's one line for a "provenance.fallback" event: which file, the first reason, how many more. */
export function fallbackToastText(detail) {
  if (!detail || typeof detail !== "object") return oneLine(detail ? show(detail) : "metadata fell back");
  const file = fileOf(detail);
  const reasons = reasonsOf(detail);
  const first = reasons[0] || "metadata fell back";
  const more = reasons.length > 1 ? ` (+${plural(reasons.length - 1, "more reason")})` : "";
  return oneLine(`${file ? `${file}: ` : ""}${first}${more}`, 240);
}
