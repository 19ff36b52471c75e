/** The gallery's DOM: search form, tiles of catalogued files, prev/next pager. State lives in panel.js. */

import { el, clear } from "./dom.js";
import { rowView, viewPath } from "./routes.js";
import { baseName, show } from "./text.js";

const THUMB_PREVIEW = "webp;75";
const FILTERS = [
  ["model", "provenance-filter-model", "text", "Model (name or hash)"],
  ["lora", "provenance-filter-lora", "text", "LoRA (name or hash)"],
  ["since", "provenance-filter-since", "date", "Since"],
  ["until", "provenance-filter-until", "date", "Until"],
];

/** The search box, the filters and the Search button; Enter in any field searches too. */
export function buildSearchForm(doc, { onSearch }) {
  const inputs = {
    text: el(doc, "input", {
      testid: "provenance-search", type: "search", placeholder: "Prompt words", className: "provenance-wide",
      attrs: { "aria-label": "Prompt words" },
    }),
  };
  for (const [key, testid, type, hint] of FILTERS) {
    inputs[key] = el(doc, "input", { testid, type, placeholder: hint, title: hint, attrs: { "aria-label": hint } });
  }
  const button = el(doc, "button", {
    testid: "provenance-search-button", type: "button", text: "Search", className: "provenance-wide",
    on: { click: () => onSearch() },
  });
  for (const input of Object.values(inputs)) {
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault?.();
        onSearch();
      }
    });
  }
  const element = el(doc, "div", { className: "provenance-form" }, [...Object.values(inputs), button]);
  const values = () => Object.fromEntries(Object.entries(inputs).map(([k, input]) => [k, String(input.value ?? "")]));
  return { element, inputs, values };
}

/** The tile's preview: a small image from /view, a muted video that loads only its first frame, or an icon. */
function preview(doc, kind, view, apiURL) {
  if (kind === "audio") {
    return el(doc, "span", { className: "provenance-audio", attrs: { "aria-hidden": "true" } }, [
      el(doc, "i", { className: "pi pi-volume-up" }),
    ]);
  }
  if (kind === "video") {
    return el(doc, "video", {
      muted: true, preload: "metadata", src: apiURL(viewPath(view)),
      attrs: { muted: true, preload: "metadata", playsinline: true },
    });
  }
  return el(doc, "img", { src: apiURL(viewPath(view, { preview: THUMB_PREVIEW })), alt: "", attrs: { loading: "lazy" } });
}

/** One tile per search row; a click calls onPick(row, view). Rows without a file name get no tile. */
export function renderTiles(doc, container, rows, { apiURL, onPick }) {
  clear(container);
  for (const row of Array.isArray(rows) ? rows : []) {
    const view = rowView(row);
    if (!view) continue;
    const kind = show(row.kind || "image");
    const tip = [view.filename, show(row.prompt), row.seed !== undefined && row.seed !== null ? `seed ${show(row.seed)}` : ""]
      .filter(Boolean).join("\n");
    container.appendChild(el(doc, "button", {
      type: "button",
      className: "provenance-tile",
      testid: "provenance-tile",
      title: tip,
      attrs: { "data-filename": view.filename, "data-subfolder": view.subfolder, "data-type": view.type, "data-kind": kind },
      on: { click: () => onPick(row, view) },
    }, [preview(doc, kind, view, apiURL), el(doc, "span", { className: "provenance-name", text: baseName(view.filename) })]));
  }
}

/** Prev / page label / Next; update(paging) from routes.paging() enables what can be clicked. */
export function buildPager(doc, { onPrev, onNext }) {
  const prev = el(doc, "button", { testid: "provenance-prev", type: "button", text: "‹ Prev", disabled: true, on: { click: () => onPrev() } });
  const next = el(doc, "button", { testid: "provenance-next", type: "button", text: "Next ›", disabled: true, on: { click: () => onNext() } });
  const label = el(doc, "span", { className: "provenance-muted", testid: "provenance-page" });
  const element = el(doc, "div", { className: "provenance-pager" }, [prev, label, next]);
  const update = (page) => {
    prev.disabled = !page?.hasPrev;
    next.disabled = !page?.hasNext;
    label.textContent = page?.label ?? "";
  };
  return { element, update };
}
