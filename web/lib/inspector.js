/** The inspector's DOM for one file: what made it, where its metadata went, and the actions on it. */

import { clear, disable, el, table } from "./dom.js";
import { diffRows } from "./diff.js";
import {
  captureRows, disagreementRows, fileRows, generationRows, loraRows, modelRows, passes, placementRows, prompts,
  runtimeSummary, warnings,
} from "./record.js";
import { reportView } from "./report.js";
import { show } from "./text.js";

export const NOT_ON_SERVER = "a dropped file is not on the server: only files in ComfyUI's folders can be reproduced or compared";

/** How "Load workflow" loads this file: the UI workflow, else the API prompt, else not at all (with why). */
export function loadPlan(answer, app) {
  const isGraph = (v) => v && typeof v === "object" && !Array.isArray(v);
  if (isGraph(answer?.workflow)) {
    if (typeof app?.loadGraphData === "function") return { kind: "workflow", reason: "" };
    return { kind: null, reason: "this ComfyUI frontend cannot load a workflow (no app.loadGraphData)" };
  }
  if (isGraph(answer?.prompt)) {
    if (typeof app?.loadApiJson === "function") return { kind: "prompt", reason: "" };
    return { kind: null, reason: "the file has only an API prompt, and this frontend cannot load one (no app.loadApiJson)" };
  }
  return { kind: null, reason: "the file carries no ComfyUI workflow or prompt" };
}

function section(doc, title, children) {
  return el(doc, "section", {}, [el(doc, "h4", { text: title }), ...children]);
}

function grid(doc, headers, rows, { testid, rowClass } = {}) {
  const head = el(doc, "thead", {}, [el(doc, "tr", {}, headers.map((h) => el(doc, "th", { text: h })))]);
  const body = el(doc, "tbody");
  for (const row of rows) {
    const tr = el(doc, "tr", { className: rowClass?.(row) || undefined });
    for (const cell of row.cells) tr.appendChild(el(doc, "td", { text: cell.text, title: cell.title || undefined }));
    body.appendChild(tr);
  }
  return el(doc, "table", { testid, className: "provenance-grid" }, [head, body]);
}

function list(doc, items) {
  return el(doc, "ul", {}, items.map((item) => el(doc, "li", { text: item })));
}

function promptSection(doc, record) {
  const { positive, negative } = prompts(record);
  return section(doc, "Prompt", [
    el(doc, "pre", { testid: "provenance-prompt", text: positive }),
    negative ? el(doc, "h4", { text: "Negative" }) : null,
    negative ? el(doc, "pre", { testid: "provenance-negative", text: negative }) : null,
  ]);
}

function generationSection(doc, record) {
  const rows = generationRows(record);
  // The seed cell is always there (the e2e tests read it); "unknown" when the record has none.
  if (!rows.some((r) => r.key === "seed")) rows.unshift({ key: "seed", label: "seed", value: "unknown" });
  return section(doc, "Generation", [table(doc, rows, { testids: { seed: "provenance-seed" } })]);
}

function passesSection(doc, record) {
  const all = passes(record);
  if (!all.length) return null;
  return section(doc, `Passes (${all.length})`, all.map((pass) => el(doc, "div", { className: "provenance-pass" }, [
    el(doc, "h4", { text: pass.title }),
    table(doc, pass.rows),
    pass.loras.length ? list(doc, pass.loras.map((l) => `LoRA ${l.name}${l.strength ? ` @ ${l.strength}` : ""}`)) : null,
  ])));
}

function modelsSection(doc, record) {
  const rows = modelRows(record).map((m) => ({
    cells: [
      { text: m.role },
      { text: m.name },
      { text: m.hash || "no hash", title: m.fullHash ? `${m.hashKinds}\nsha256 ${m.fullHash}` : "no hash recorded" },
      { text: m.strength },
    ],
  }));
  const loras = loraRows(record);
  return section(doc, "Models", [
    grid(doc, ["role", "name", "hash", "strength"], rows, { testid: "provenance-models" }),
    loras.length ? el(doc, "h4", { text: `LoRAs (${loras.length})` }) : null,
    loras.length ? el(doc, "ul", { testid: "provenance-loras" }, loras.map((l) => el(doc, "li", {
      text: `${l.name}${l.strength ? ` @ ${l.strength}` : ""}`,
    }))) : null,
  ]);
}

function provenanceSections(doc, record) {
  const out = [section(doc, "Capture", [table(doc, captureRows(record))])];
  const disagreements = disagreementRows(record);
  if (disagreements.length) {
    out.push(section(doc, "Disagreements (graph vs run)", [grid(doc, ["field", "values"],
      disagreements.map((d) => ({ cells: [{ text: d.field }, { text: d.values }] })), { testid: "provenance-disagreements" })]));
  }
  const runtime = runtimeSummary(record?.runtime);
  if (runtime.length) {
    out.push(section(doc, "Runtime capture", [grid(doc, ["key", "size"],
      runtime.map((r) => ({ cells: [{ text: r.key }, { text: r.size }] })), { testid: "provenance-runtime" })]));
  }
  const placements = placementRows(record);
  const fell = placements.filter((p) => p.fellBack).length;
  out.push(section(doc, fell ? `Embedded where (${fell} fell back)` : "Embedded where", [grid(doc,
    ["target", "location", "status", "reason"],
    placements.map((p) => ({ fellBack: p.fellBack, cells: [{ text: p.target }, { text: p.location }, { text: p.status }, { text: p.reason }] })),
    { testid: "provenance-placements", rowClass: (row) => (row.fellBack ? "provenance-fellback" : "") })]));
  const notes = warnings(record);
  if (notes.length) out.push(section(doc, "Warnings", [el(doc, "ul", { testid: "provenance-warnings" }, notes.map((w) => el(doc, "li", { text: w })))]));
  return out;
}

function a1111Section(doc, answer, onCopy) {
  const text = typeof answer?.a1111 === "string" ? answer.a1111 : "";
  const copy = el(doc, "button", { testid: "provenance-copy", type: "button", text: "Copy", on: { click: () => onCopy(text) } });
  if (!text) disable(copy, "no A1111 parameters in this file");
  return section(doc, "A1111 parameters", [
    el(doc, "pre", { testid: "provenance-a1111", text: text || "(none)" }),
    el(doc, "div", { className: "provenance-actions" }, [copy]),
  ]);
}

/** A preview only from the route's own /view path, never from anything the record says. */
function previewImage(doc, answer, apiURL) {
  const view = answer?.view;
  if (typeof view !== "string" || !view.startsWith("/view?") || answer?.file?.kind === "audio") return null;
  if (answer?.file?.kind === "video") return el(doc, "video", { className: "provenance-preview", muted: true, controls: true, preload: "metadata", src: apiURL(view) });
  return el(doc, "img", { className: "provenance-preview", alt: "", src: apiURL(view) });
}

/**
 * The inspector of one route answer ({file, record, a1111, workflow, prompt, view}). `on` holds the
 * actions (loadWorkflow, reproduce, diff, copy); the returned areas are where panel.js shows their results.
 */
export function renderInspector(doc, answer, { app, apiURL = (p) => p, on = {} } = {}) {
  const record = answer?.record && typeof answer.record === "object" ? answer.record : {};
  const uploaded = Boolean(answer?.file?.uploaded);
  const plan = loadPlan(answer, app);
  const load = el(doc, "button", { testid: "provenance-load-workflow", type: "button", text: "Load workflow", on: { click: () => on.loadWorkflow?.(plan) } });
  if (!plan.kind) disable(load, plan.reason);
  const reproduce = el(doc, "button", { testid: "provenance-reproduce", type: "button", text: "Reproduce (check)", on: { click: () => on.reproduce?.() } });
  const diff = el(doc, "button", { testid: "provenance-diff", type: "button", text: "Diff with…", attrs: { "aria-pressed": "false" }, on: { click: () => on.diff?.() } });
  if (uploaded) {
    disable(reproduce, NOT_ON_SERVER);
    disable(diff, NOT_ON_SERVER);
  }
  const reproduceResult = el(doc, "div", { testid: "provenance-reproduce-result", className: "provenance-result" });
  const diffResult = el(doc, "div", { testid: "provenance-diff-result", className: "provenance-result" });
  const element = el(doc, "section", { testid: "provenance-inspector", className: "provenance-inspector" }, [
    el(doc, "h3", { text: show(answer?.file?.filename) || "File" }),
    previewImage(doc, answer, apiURL),
    table(doc, fileRows(answer?.file)),
    el(doc, "div", { className: "provenance-actions" }, [load, reproduce, diff]),
    reproduceResult,
    diffResult,
    promptSection(doc, record),
    generationSection(doc, record),
    passesSection(doc, record),
    modelsSection(doc, record),
    ...provenanceSections(doc, record),
    a1111Section(doc, answer, (text) => on.copy?.(text)),
  ]);
  return { element, reproduceResult, diffResult, buttons: { load, reproduce, diff } };
}

/** The dry run's lines, then a Queue button (off, with why, when the server would refuse the run). */
export function renderReport(doc, container, answer, { onQueue, queued = false } = {}) {
  const report = reportView(answer);
  clear(container);
  container.setAttribute("data-status", report.status);
  container.appendChild(el(doc, "ul", {}, report.lines.map((line) => el(doc, "li", { text: line }))));
  if (queued) return report;
  const queue = el(doc, "button", { testid: "provenance-queue", type: "button", text: "Queue", on: { click: () => onQueue?.() } });
  if (report.blocking.length) disable(queue, `the server would refuse: ${report.blocking[0]}`);
  container.appendChild(el(doc, "div", { className: "provenance-actions" }, [queue]));
  return report;
}

/** The diff as a table of changes; what has no known shape is also shown as JSON, never dropped. */
export function renderDiff(doc, container, answer) {
  clear(container);
  const { identical, rows, unknown } = diffRows(answer);
  // The route names each side with a file object ({filename, subfolder, type, …}); the CLI with a string.
  const side = (v) => (v && typeof v === "object" ? show(v.filename) : show(v));
  const names = [side(answer?.a), side(answer?.b)].filter(Boolean).join(" ↔ ");
  container.appendChild(el(doc, "h4", { text: names ? `Diff: ${names}` : "Diff" }));
  if (identical) container.appendChild(el(doc, "p", { text: "identical" }));
  if (rows.length) {
    container.appendChild(grid(doc, ["section", "where", "field", "a", "b"], rows.map((r) => ({
      cells: [{ text: r.section }, { text: r.where }, { text: r.change && r.change !== "changed" ? `${r.field} (${r.change})` : r.field }, { text: r.a }, { text: r.b }],
    })), { testid: "provenance-diff-table" }));
  }
  if (unknown.length || (!rows.length && !identical)) {
    const data = answer?.diff && typeof answer.diff === "object" ? answer.diff : answer;
    let text;
    try {
      text = JSON.stringify(data, null, 2);
    } catch {
      text = String(data);
    }
    container.appendChild(el(doc, "pre", { text }));
  }
  return { identical, rows, unknown };
}
