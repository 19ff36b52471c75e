/** The tab's stylesheet, injected once; scoped under .provenance-tab, on the frontend's own colour variables. */

export const STYLE_ID = "provenance-style";

export const CSS = `
.provenance-tab { display: flex; flex-direction: column; gap: 8px; padding: 8px; height: 100%; overflow: auto;
  box-sizing: border-box; color: var(--fg-color, #ddd); background: var(--comfy-menu-bg, #353535); font-size: 13px; }
.provenance-tab h3 { margin: 4px 0; font-size: 14px; }
.provenance-tab h4 { margin: 8px 0 4px; font-size: 13px; }
.provenance-tab .provenance-header { display: flex; align-items: baseline; gap: 8px; }
.provenance-tab .provenance-version, .provenance-tab .provenance-muted { color: var(--descrip-text, #999); }
.provenance-tab .provenance-status { color: var(--descrip-text, #999); word-break: break-word; }
.provenance-tab .provenance-status[data-state="on"] { color: var(--p-green-400, #6c6); }
.provenance-tab .provenance-status[data-state="disabled"], .provenance-tab .provenance-status[data-state="partial"] {
  color: var(--p-orange-400, #e90); }
.provenance-tab .provenance-error { color: var(--error-text, #f66); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.provenance-tab .provenance-error:empty { display: none; }
.provenance-tab input, .provenance-tab button, .provenance-tab select { background: var(--comfy-input-bg, #222);
  color: var(--input-text, var(--fg-color, #ddd)); border: 1px solid var(--border-color, #555); border-radius: 4px;
  padding: 3px 6px; font: inherit; }
.provenance-tab button { cursor: pointer; }
.provenance-tab button:disabled { opacity: 0.5; cursor: not-allowed; }
.provenance-tab button[aria-pressed="true"] { outline: 2px solid var(--p-primary-color, #4a9); }
.provenance-tab .provenance-form { display: grid; grid-template-columns: 1fr 1fr; gap: 4px; }
.provenance-tab .provenance-form .provenance-wide { grid-column: 1 / -1; }
.provenance-tab .provenance-gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(88px, 1fr));
  gap: 4px; }
.provenance-tab .provenance-tile { display: flex; flex-direction: column; padding: 2px; overflow: hidden;
  height: 112px; }
.provenance-tab .provenance-tile img, .provenance-tab .provenance-tile video { width: 100%; height: 88px;
  object-fit: cover; }
.provenance-tab .provenance-tile .provenance-audio { height: 88px; display: flex; align-items: center;
  justify-content: center; font-size: 28px; }
.provenance-tab .provenance-tile span.provenance-name { font-size: 10px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.provenance-tab .provenance-pager { display: flex; align-items: center; gap: 6px; }
.provenance-tab .provenance-drop { border: 2px dashed var(--border-color, #555); border-radius: 6px; padding: 10px;
  text-align: center; color: var(--descrip-text, #999); }
.provenance-tab .provenance-drop.provenance-over { border-color: var(--fg-color, #ddd); }
.provenance-tab table { border-collapse: collapse; width: 100%; }
.provenance-tab th, .provenance-tab td { border-bottom: 1px solid var(--border-color, #444); padding: 2px 4px;
  text-align: left; vertical-align: top; word-break: break-word; }
.provenance-tab pre { white-space: pre-wrap; word-break: break-word; background: var(--comfy-input-bg, #222);
  padding: 6px; margin: 0; max-height: 240px; overflow: auto; }
.provenance-tab tr.provenance-fellback td { color: var(--p-orange-400, #e90); }
.provenance-tab .provenance-actions { display: flex; flex-wrap: wrap; gap: 4px; }
.provenance-tab .provenance-preview { max-width: 100%; max-height: 200px; object-fit: contain; }
.provenance-floating { position: fixed; right: 16px; bottom: 16px; z-index: 1000; }
.provenance-floating-panel { position: fixed; right: 16px; bottom: 56px; width: 420px; height: 70vh; z-index: 1000;
  border: 1px solid var(--border-color, #555); box-shadow: 0 4px 16px rgba(0, 0, 0, 0.5); }
`;

/** Add the stylesheet to `doc` unless it is already there. */
export function injectStyle(doc) {
  if (!doc?.head || doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  doc.head.appendChild(style);
}
