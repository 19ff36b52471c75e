/** Fakes of the frontend's `app` and `api` (only what the extension touches), recording what it does. */

import { FakeDocument } from "./fakedom.js";

export function fakeFrontend({ sidebar = true, toast = true, settings = {} } = {}) {
  const recorded = { tabs: [], toasts: [], listeners: {}, fetched: [], extensions: [] };
  const store = { ...settings };
  const extensionManager = {
    setting: { get: (id) => store[id], set: (id, v) => { store[id] = v; } },
  };
  if (sidebar) extensionManager.registerSidebarTab = (tab) => recorded.tabs.push(tab);
  if (toast) extensionManager.toast = { add: (t) => recorded.toasts.push(t) };
  const app = {
    extensionManager,
    registerExtension: (ext) => recorded.extensions.push(ext),
    loadGraphData: async () => {},
  };
  const api = {
    apiURL: (p) => `/api${p}`,
    addEventListener: (type, fn) => { recorded.listeners[type] = fn; },
    fetchApi: async (route) => {
      recorded.fetched.push(route);
      const body = route.startsWith("/provenance/status")
        ? { pack_version: "0.1.0", hooks: {}, enabled_by_env: false, installed: false, active: false, catalogue: {} }
        : { results: [], limit: 24, offset: 0, next_offset: null };
      return { ok: true, status: 200, text: async () => JSON.stringify(body) };
    },
    dispatch(type, detail) {
      recorded.listeners[type]?.({ type, detail });
    },
  };
  return { app, api, recorded, store, doc: new FakeDocument() };
}

/** A ProvenanceSaveImage node as LiteGraph builds it, with configure() writing widgets_values like LGraphNode's. */
export function saveNode({ targetsAsList = true, type = "ProvenanceSaveImage" } = {}) {
  const widgets = [
    { name: "filename_prefix", value: "ComfyUI" },
    { name: "format", value: "png", options: { values: ["png", "jpeg", "webp"] } },
    { name: "quality", value: 95 },
    { name: "lossless", value: false },
    targetsAsList
      ? { name: "targets", value: ["a1111", "comfyui", "record", "xmp"], options: { values: ["a1111", "comfyui", "record", "xmp", "sidecar_json", "sidecar_xmp", "sidecar_txt", "manifest"] } }
      : { name: "targets", value: "a1111,comfyui,record,xmp" },
    { name: "prefer_runtime", value: true },
    { name: "lora_tags", value: true },
    { name: "options", value: "" },
  ];
  return {
    type,
    comfyClass: type,
    widgets,
    configure(info) {
      (info.widgets_values ?? []).forEach((v, i) => { if (widgets[i]) widgets[i].value = v; });
    },
    values() {
      return Object.fromEntries(widgets.map((w) => [w.name, w.value]));
    },
  };
}
