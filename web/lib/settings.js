/** The pack's frontend settings and the defaults they give new save nodes. */

export const SETTING = Object.freeze({
  format: "Provenance.SaveDefaults.Format",
  targets: "Provenance.SaveDefaults.Targets",
  loraTags: "Provenance.SaveDefaults.LoraTags",
  catalogue: "Provenance.Catalogue.Enabled",
  pageSize: "Provenance.Gallery.PageSize",
});

export const FORMATS = ["png", "jpeg", "webp"];
export const SAVE_NODE_TYPES = new Set(["ProvenanceSaveImage", "ProvenanceSaveVideo", "ProvenanceSaveAudio"]);

// No `category`: the frontend files each setting under its id split on "." (Provenance › SaveDefaults › …).
export const SETTINGS = [
  {
    id: SETTING.format,
    name: "Format of new Provenance Save Image nodes",
    type: "combo",
    options: FORMATS,
    defaultValue: "png",
    tooltip: "The `format` a Provenance Save Image node starts with when you add it. Nodes in loaded workflows keep theirs.",
  },
  {
    id: SETTING.targets,
    name: "Metadata targets of new save nodes",
    type: "text",
    defaultValue: "",
    tooltip: "Comma-separated targets (a1111, comfyui, record, xmp, sidecar_json, sidecar_xmp, sidecar_txt, manifest) a new Provenance Save Image node starts with. Empty: the pack's defaults.",
  },
  {
    id: SETTING.loraTags,
    name: "LoRA tags in the A1111 prompt of new save nodes",
    type: "boolean",
    defaultValue: true,
    tooltip: "Whether a new Provenance Save Image node writes <lora:name:weight> tags into the A1111 parameters, as A1111 and Civitai expect.",
  },
  {
    id: SETTING.catalogue,
    name: "Catalogue saved files",
    type: "boolean",
    defaultValue: true,
    tooltip: "Index every file the save nodes write into the pack's catalogue (the gallery's search). The server reads this setting; it applies to the next save.",
  },
  {
    id: SETTING.pageSize,
    name: "Gallery page size",
    type: "number",
    defaultValue: 24,
    attrs: { min: 1, max: 200, step: 1 },
    tooltip: "How many files one page of the Provenance gallery shows (1–200).",
  },
];

/** The pack's default targets (metadata/formats spec DEFAULT_TARGET_LIST; tests/test_js.py checks they agree). */
export const DEFAULT_TARGETS = ["a1111", "comfyui", "record", "xmp"];

/** The `targets` default the node's definition declares (V1 `input.optional`, as /object_info sends it). */
function declaredTargets(node) {
  const spec = node?.constructor?.nodeData?.input?.optional?.targets;
  const value = Array.isArray(spec) ? spec[1]?.default : undefined;
  return Array.isArray(value) && value.length && value.every((t) => typeof t === "string") ? value : null;
}

/** The targets setting as a clean list: split on commas or spaces, blanks and duplicates dropped. */
export function parseTargets(text) {
  return [...new Set(String(text ?? "").split(/[\s,]+/).map((t) => t.trim().toLowerCase()).filter(Boolean))];
}

function widget(node, name) {
  return Array.isArray(node?.widgets) ? node.widgets.find((w) => w?.name === name) : undefined;
}

/** The values a combo widget accepts, when it says. */
function choices(w) {
  const values = w?.options?.values;
  return Array.isArray(values) ? values : null;
}

/**
 * Give a save node the user just added the settings' defaults. Returns the widget names it set.
 *
 * Why this is safe for loaded workflows: the frontend calls nodeCreated at the end of the node's
 * constructor (docs.comfy.org "Comfy Hooks": "right at the end of the ComfyNode() function"), and a
 * workflow's nodes are constructed first and configured after (call sequence "Loading workflow":
 * nodeCreated, then loadedGraphNode), so configure() writes the saved widgets_values over whatever is
 * set here. This only holds while the caller stays synchronous: an `await` before calling this would
 * run it after configure and overwrite the loaded values. A widget a loaded workflow has no value for
 * (saved before the widget existed) keeps this default, which is the value a new node would get too.
 */
export function applySaveDefaults(node, getSetting) {
  const type = node?.comfyClass ?? node?.type;
  if (!SAVE_NODE_TYPES.has(type)) return [];
  const set = [];
  const format = getSetting(SETTING.format);
  const formatWidget = widget(node, "format");
  if (formatWidget && typeof format === "string" && (choices(formatWidget)?.includes(format) ?? FORMATS.includes(format))) {
    formatWidget.value = format;
    set.push("format");
  }
  const loraTags = getSetting(SETTING.loraTags);
  const loraWidget = widget(node, "lora_tags");
  if (loraWidget && typeof loraTags === "boolean") {
    loraWidget.value = loraTags;
    set.push("lora_tags");
  }
  const targetsWidget = widget(node, "targets");
  let targets = parseTargets(getSetting(SETTING.targets));
  if (!targets.length && Array.isArray(targetsWidget?.value) && !targetsWidget.value.length) {
    // Frontend 1.49.6 starts a multi-select with no value, whatever its declared default: the node's
    // own default list, or (not declared) the pack's, so a new node never saves with nothing selected.
    targets = declaredTargets(node) ?? DEFAULT_TARGETS;
  }
  if (targetsWidget && targets.length) {
    // V3 declares targets as a multi-select (its value a list); the V1 node as comma-separated text.
    const allowed = choices(targetsWidget);
    if (Array.isArray(targetsWidget.value)) targetsWidget.value = allowed ? targets.filter((t) => allowed.includes(t)) : targets;
    else targetsWidget.value = targets.join(",");
    set.push("targets");
  }
  return set;
}
