/** The ComfyUI extension object, built from what the frontend hands in, so Node can test it with fakes. */

import { createClient } from "./client.js";
import { el } from "./dom.js";
import { createPanel } from "./panel.js";
import { SETTINGS, applySaveDefaults } from "./settings.js";
import { fallbackToastText, unseenReasons } from "./status.js";
import { injectStyle } from "./style.js";
import { VERSION } from "./version.js";

export const EXTENSION_NAME = "comfyui.provenance";
export const TAB_ID = "provenance";
export const FALLBACK_EVENT = "provenance.fallback";
const TOAST_LIFE_MS = 8000;

/** A setting's value: the extension manager's store (frontend ≥ 1.3), else the old settings UI. */
export function settingReader(app) {
  return (id) => {
    try {
      if (typeof app?.extensionManager?.setting?.get === "function") return app.extensionManager.setting.get(id);
      if (typeof app?.ui?.settings?.getSettingValue === "function") return app.ui.settings.getSettingValue(id);
    } catch {
      // a settings store that is not ready yet reads as "not set": the callers fall back to defaults
    }
    return undefined;
  };
}

/** Show a fallback event as a warning toast, or in the console where this frontend has no toasts. */
export function showFallback(app, detail, log = console) {
  const text = fallbackToastText(detail);
  const toast = app?.extensionManager?.toast;
  if (typeof toast?.add === "function") {
    toast.add({ severity: "warn", summary: "Provenance", detail: text, life: TOAST_LIFE_MS });
  } else {
    log.warn(`Provenance: ${text}`);
  }
  return text;
}

/**
 * Put the panel where this frontend allows: a sidebar tab (frontend ≥ 1.2), else a floating button at the
 * bottom right that opens the same panel in a fixed box (older frontends have no bottom panel API either).
 */
export function placePanel({ app, doc, openPanel }) {
  const manager = app?.extensionManager;
  if (typeof manager?.registerSidebarTab === "function") {
    manager.registerSidebarTab({
      id: TAB_ID,
      title: "Provenance",
      icon: "pi pi-verified",
      tooltip: "Provenance",
      type: "custom",
      // The frontend calls render each time the tab opens, with a fresh element: the same panel
      // moves in, so searches and the open inspector survive closing the tab.
      render: (target) => {
        target.appendChild(openPanel());
      },
    });
    return "sidebar";
  }
  if (!doc?.body) return "none";
  let box = null;
  const button = el(doc, "button", {
    type: "button", className: "provenance-floating p-button", testid: "provenance-open", text: "Provenance",
    title: "Provenance: gallery and inspector",
    on: {
      click: () => {
        if (!box) {
          box = el(doc, "div", { className: "provenance-floating-panel" }, [openPanel()]);
          doc.body.appendChild(box);
          return;
        }
        box.hidden = !box.hidden;
        if (!box.hidden) openPanel();
      },
    },
  });
  doc.body.appendChild(button);
  return "floating";
}

/** The extension definition for app.registerExtension. */
export function createExtension({ app, api, doc = globalThis.document, nav = globalThis.navigator, log = console }) {
  const getSetting = settingReader(app);
  const client = createClient((route, init) => api.fetchApi(route, init));
  const apiURL = (path) => (typeof api?.apiURL === "function" ? api.apiURL(path) : path);
  let instance = null;
  // The panel is built once, on first open (status and first page); later opens refresh the status line.
  const openPanel = () => {
    if (!instance) {
      injectStyle(doc);
      instance = createPanel({ doc, client, app, apiURL, getSetting, nav });
      instance.mount();
    } else {
      instance.refreshStatus();
    }
    return instance.element;
  };
  const badge = { label: `Provenance v${VERSION}`, url: "https://github.com/", icon: "pi pi-verified" };
  const extension = {
    name: EXTENSION_NAME,
    settings: SETTINGS,
    aboutPageBadges: [badge],
    // Not a frontend field (the prefix keeps clear of future ones): where setup() put the panel
    // ("sidebar" or "floating") and the panel once opened, for tests and debugging.
    _provenance: {
      placement: null,
      get panel() {
        return instance;
      },
    },
    async setup() {
      try {
        const seen = new Set(); // each reason is toasted once per page; the record keeps every one
        api?.addEventListener?.(FALLBACK_EVENT, (ev) => {
          const fresh = unseenReasons(ev?.detail, seen);
          if (fresh) showFallback(app, fresh, log);
        });
      } catch (err) {
        log.warn("Provenance: no fallback toasts", err);
      }
      try {
        extension._provenance.placement = placePanel({ app, doc, openPanel });
      } catch (err) {
        log.warn("Provenance: the panel could not be added", err);
      }
      try {
        const status = await client.status();
        // Badges are read when the About page opens; a server newer than these files says so there.
        if (status?.pack_version && status.pack_version !== VERSION) badge.label = `Provenance v${status.pack_version} (web v${VERSION})`;
        return status;
      } catch (err) {
        log.warn(`Provenance: ${err?.message ?? err}`);
        return null;
      }
    },
    // Synchronous on purpose: see applySaveDefaults for why that keeps loaded workflows' values.
    nodeCreated(node) {
      try {
        applySaveDefaults(node, getSetting);
      } catch (err) {
        log.warn("Provenance: save defaults not applied", err);
      }
    },
  };
  return extension;
}
