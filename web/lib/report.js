/** POST /provenance/reproduce's report (reproduce/run.py Report.to_dict) as lines, read defensively. */

import { isBlank, show } from "./text.js";

const asObject = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});

/** Every list of strings (or objects) in `checks` as lines prefixed by its name: differences, warnings, … */
function checkLines(checks) {
  const lines = [];
  for (const [key, value] of Object.entries(asObject(checks))) {
    if (Array.isArray(value)) {
      for (const item of value) lines.push(`${key.replace(/_/g, " ")}: ${show(item)}`);
    } else if (!isBlank(value) && typeof value !== "object") {
      lines.push(`${key.replace(/_/g, " ")}: ${show(value)}`);
    }
  }
  return lines;
}

/**
 * {status, lines, blocking, promptId}: `blocking` is the list of differences that make the server refuse
 * the run (a missing node class or model, a hash that differs), so the Queue button can say why it is off.
 */
export function reportView(answer) {
  const data = asObject(answer);
  const report = asObject(data.report ?? data);
  const checks = asObject(report.checks);
  const status = show(report.status || (report.prompt_id ? "queued" : "unknown"));
  const lines = [`status: ${status}`];
  for (const note of Array.isArray(report.notes) ? report.notes : []) lines.push(`note: ${show(note)}`);
  lines.push(...checkLines(checks));
  for (const key of ["problems", "differences", "errors"]) {
    if (Array.isArray(report[key])) for (const item of report[key]) lines.push(`${key}: ${show(item)}`);
  }
  const promptId = isBlank(report.prompt_id) ? "" : show(report.prompt_id);
  if (promptId) lines.push(`prompt id: ${promptId}`);
  const blocking = [
    ...(Array.isArray(checks.differences) ? checks.differences : []),
    ...(Array.isArray(report.problems) ? report.problems : []),
  ].map(show);
  return { status, lines, blocking, promptId };
}
