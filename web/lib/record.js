/** View models of an inspected file: the record (schema comfyui-provenance/1) as label/value rows. */

import { isBlank, show, sizeOf } from "./text.js";

// Shown first, in this order; any other generation field follows under its own name.
const GENERATION_ORDER = [
  "seed", "steps", "cfg", "sampler", "scheduler", "denoise", "width", "height", "guidance", "shift",
  "frames", "fps", "clip_skip", "batch_size",
];
// Shown elsewhere (the prompts) or as their own sections.
const GENERATION_ELSEWHERE = new Set(["positive", "negative"]);
const PASS_ORDER = [
  "seed", "steps", "cfg", "sampler", "scheduler", "denoise", "start_step", "end_step", "model", "width",
  "height", "guidance", "shift", "frames", "add_noise",
];
const PASS_ELSEWHERE = new Set(["node_id", "class_type", "positive", "negative", "loras", "sources"]);
const HASH_SHOWN = 10;

const asObject = (v) => (v && typeof v === "object" && !Array.isArray(v) ? v : {});
const asList = (v) => (Array.isArray(v) ? v : []);

function label(key) {
  return String(key).replace(/_/g, " ");
}

/** Rows {key, label, value} of an object: `order` first, then the rest; blanks and `skip` left out. */
function rowsOf(data, order, skip) {
  const obj = asObject(data);
  const keys = [...order.filter((k) => k in obj), ...Object.keys(obj).filter((k) => !order.includes(k))];
  return keys
    .filter((k) => !skip.has(k) && !isBlank(obj[k]))
    .map((k) => ({ key: k, label: label(k), value: show(obj[k]) }));
}

export function prompts(record) {
  const gen = asObject(record?.generation);
  return { positive: show(gen.positive), negative: show(gen.negative) };
}

export function generationRows(record) {
  return rowsOf(record?.generation, GENERATION_ORDER, GENERATION_ELSEWHERE);
}

/** "0.75" or "model 0.75 / clip 1" — the strengths a LoRA (or a model with strengths) was applied with. */
export function strengths(item) {
  const m = item?.strength_model;
  const c = item?.strength_clip;
  if (isBlank(m) && isBlank(c)) return "";
  if (isBlank(c) || m === c) return show(m);
  if (isBlank(m)) return show(c);
  return `model ${show(m)} / clip ${show(c)}`;
}

/** The hash shown in a narrow column (AutoV2 when known) and the full one for a title attribute. */
export function shortHash(hashes) {
  const h = asObject(hashes);
  const sha = typeof h.sha256 === "string" ? h.sha256 : "";
  const short = show(h.autov2 || (sha ? sha.slice(0, HASH_SHOWN) : "") || h.autov3 || "");
  const full = sha || show(h.autov3 || h.autov2 || "");
  const kinds = Object.keys(h).filter((k) => !isBlank(h[k]));
  return { short, full, kinds };
}

export function passes(record) {
  return asList(record?.passes).map((pass, i) => {
    const p = asObject(pass);
    const what = [show(p.class_type), p.node_id !== undefined && p.node_id !== null ? `node ${show(p.node_id)}` : ""]
      .filter(Boolean).join(", ");
    return {
      title: `Pass ${i + 1}${what ? ` (${what})` : ""}`,
      rows: rowsOf(p, PASS_ORDER, PASS_ELSEWHERE),
      loras: asList(p.loras).map((l) => ({ name: show(asObject(l).name), strength: strengths(l) })),
      positive: show(p.positive),
      negative: show(p.negative),
    };
  });
}

export function modelRows(record) {
  return asList(record?.models).map((model) => {
    const m = asObject(model);
    const hash = shortHash(m.hashes);
    return {
      role: show(m.role),
      name: show(m.name),
      hash: hash.short,
      fullHash: hash.full,
      hashKinds: hash.kinds.join(", "),
      strength: strengths(m),
    };
  });
}

/** Every LoRA with its strengths: the models list's, plus any only a pass names. */
export function loraRows(record) {
  const rows = modelRows(record).filter((m) => m.role === "lora").map((m) => ({ name: m.name, strength: m.strength }));
  const seen = new Set(rows.map((r) => r.name));
  for (const pass of passes(record)) {
    for (const lora of pass.loras) {
      if (lora.name && !seen.has(lora.name)) {
        seen.add(lora.name);
        rows.push(lora);
      }
    }
  }
  return rows;
}

/** Where each target went; anything not "written" fell back (moved to a sidecar, omitted, failed). */
export function placementRows(record) {
  return asList(asObject(record?.provenance).embedding).map((placement) => {
    const p = asObject(placement);
    const status = show(p.status);
    return {
      target: show(p.target),
      location: show(p.location),
      status,
      reason: show(p.reason),
      fellBack: status !== "written",
    };
  });
}

export function captureRows(record) {
  const prov = asObject(record?.provenance);
  const gen = asObject(prov.generator);
  const generator = [show(gen.name), show(gen.version)].filter(Boolean).join(" ");
  const rows = [
    ["capture mode", prov.capture_mode],
    ["created", prov.created],
    ["generator", generator],
    ["ComfyUI version", prov.comfyui_version],
    ["prompt id", prov.prompt_id],
    ["filled at runtime", prov.filled_at_runtime],
    ["schema", record?.schema],
  ];
  return rows.filter(([, v]) => !isBlank(v)).map(([l, v]) => ({ label: l, value: show(v) }));
}

/** Fields where the graph and the run disagreed: {field, values: "parser: 1 · runtime: 42"}. */
export function disagreementRows(record) {
  return asList(asObject(record?.provenance).disagreements).map((item) => {
    if (!item || typeof item !== "object") return { field: "", values: show(item) };
    const { field, path, ...rest } = item;
    const values = Object.entries(rest).map(([k, v]) => `${label(k)}: ${show(v)}`).join(" · ");
    return { field: show(field ?? path ?? ""), values };
  });
}

export function warnings(record) {
  return asList(asObject(record?.provenance).warnings).map(show).filter(Boolean);
}

/** The runtime block in brief: each top-level key and how big it is (the block can be megabytes). */
export function runtimeSummary(runtime) {
  if (!runtime || typeof runtime !== "object") return [];
  return Object.entries(runtime).map(([key, value]) => ({ key, size: sizeOf(value) }));
}

/** The file header: name, kind, size, and where it came from. */
export function fileRows(file) {
  const f = asObject(file);
  const where = f.uploaded ? "dropped here (not on the server)" : [show(f.type), show(f.subfolder)].filter(Boolean).join("/");
  const mtime = Number(f.mtime);
  return [
    ["file", f.filename],
    ["kind", f.kind],
    ["size", isBlank(f.size) ? "" : `${show(f.size)} bytes`],
    ["folder", where],
    ["modified", Number.isFinite(mtime) && mtime > 0 ? new Date(mtime * 1000).toISOString() : ""],
  ].filter(([, v]) => !isBlank(v)).map(([l, v]) => ({ label: l, value: show(v) }));
}
