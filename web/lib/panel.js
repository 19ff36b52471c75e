/** The Provenance tab: status line, gallery, drop zone and inspector, wired to the routes' client. */

import { copyText, el, clear } from "./dom.js";
import { buildPager, buildSearchForm, renderTiles } from "./gallery.js";
import { renderDiff, renderInspector, renderReport } from "./inspector.js";
import { pageSize, paging } from "./routes.js";
import { statusLine } from "./status.js";
import { oneLine, show } from "./text.js";
import { VERSION } from "./version.js";

export const PAGE_SIZE_SETTING = "Provenance.Gallery.PageSize";
export const CATALOGUE_SETTING = "Provenance.Catalogue.Enabled";

/**
 * Build the tab. `client` is createClient()'s, `apiURL` ComfyUI's api.apiURL (for <img src>),
 * `getSetting(id)` reads a setting, `app` is ComfyUI's app (loadGraphData / loadApiJson), `nav` the
 * navigator (clipboard). Every handler runs through run(): an error shows in one line, never escapes.
 */
export function createPanel({ doc, client, app = null, apiURL = (p) => p, getSetting = () => undefined, nav = null }) {
  const state = { page: null, current: null, currentView: null, diffFrom: null, inspector: null, searches: 0, opens: 0 };
  const inflight = new Set();

  const version = el(doc, "span", { className: "provenance-version", testid: "provenance-version", text: `v${VERSION}` });
  const status = el(doc, "div", { className: "provenance-status", testid: "provenance-status", text: "Checking…" });
  const error = el(doc, "div", { className: "provenance-error", testid: "provenance-error", attrs: { role: "alert" } });
  const notice = el(doc, "div", { className: "provenance-muted", testid: "provenance-notice", attrs: { "aria-live": "polite" } });
  const form = buildSearchForm(doc, { onSearch: () => run(() => search(0)) });
  const note = el(doc, "div", { className: "provenance-muted", testid: "provenance-gallery-note" });
  const gallery = el(doc, "div", { className: "provenance-gallery", testid: "provenance-gallery" });
  const pager = buildPager(doc, {
    onPrev: () => run(() => search(state.page?.prevOffset ?? 0)),
    onNext: () => run(() => (state.page?.hasNext ? search(state.page.nextOffset) : undefined)),
  });
  const diffHint = el(doc, "div", { className: "provenance-muted", testid: "provenance-diff-hint" });
  const fileInput = el(doc, "input", {
    type: "file", testid: "provenance-file-input", hidden: true,
    on: { change: () => run(() => inspectFile(fileInput.files?.[0], () => { fileInput.value = ""; })) },
  });
  const drop = el(doc, "div", { className: "provenance-drop", testid: "provenance-drop" }, [
    el(doc, "div", { text: "Drop an image, video or audio file here to inspect it" }),
    el(doc, "button", { type: "button", text: "Choose file…", on: { click: () => fileInput.click?.() } }),
    fileInput,
  ]);
  const inspectorHolder = el(doc, "div", { className: "provenance-inspector-holder" });
  const element = el(doc, "div", { className: "provenance-tab", testid: "provenance-tab" }, [
    el(doc, "div", { className: "provenance-header" }, [el(doc, "h3", { text: "Provenance" }), version]),
    status, error, notice, form.element, note, gallery, pager.element, drop, diffHint, inspectorHolder,
  ]);
  wireDrop(drop, (file) => run(() => inspectFile(file)));

  /** Run one action: clear the last error, show this one's in a line; resolves when done, never rejects. */
  function run(action) {
    error.textContent = "";
    const done = (async () => {
      try {
        await action();
      } catch (err) {
        error.textContent = oneLine(err?.message ?? err) || "something went wrong";
      }
    })();
    inflight.add(done);
    done.finally(() => inflight.delete(done));
    return done;
  }

  async function refreshStatus() {
    status.textContent = "Checking…";
    let answer;
    try {
      answer = await client.status();
    } catch (err) {
      status.textContent = "Hooks: status unknown";
      status.setAttribute("data-state", "unknown");
      throw err;
    }
    const line = statusLine(answer);
    status.textContent = line.text;
    status.setAttribute("data-state", line.state);
    const server = show(answer?.pack_version);
    version.textContent = server && server !== VERSION ? `v${server} (browser files v${VERSION}: reload the page)` : `v${server || VERSION}`;
    return answer;
  }

  async function search(offset) {
    const limit = pageSize(getSetting(PAGE_SIZE_SETTING));
    const ticket = ++state.searches;
    const answer = await client.search(form.values(), { limit, offset });
    if (ticket !== state.searches) return answer; // a newer search was asked meanwhile: its page wins
    state.page = paging(answer, limit);
    renderTiles(doc, gallery, answer?.results, { apiURL, onPick: (row, view) => run(() => pick(view)) });
    pager.update(state.page);
    const notes = [];
    if (getSetting(CATALOGUE_SETTING) === false) notes.push("The catalogue is off (setting Provenance › Catalogue): new files are not indexed.");
    if (answer?.note) notes.push(show(answer.note));
    if (!notes.length && !answer?.results?.length) notes.push("No catalogued files match.");
    note.textContent = notes.join(" ");
    return answer;
  }

  async function pick(view) {
    if (state.diffFrom) return compare(state.diffFrom, view);
    return open(view);
  }

  async function open(view) {
    const ticket = ++state.opens;
    const answer = await client.record(view);
    if (ticket === state.opens) show_(answer, view);
    return answer;
  }

  async function inspectFile(file, after) {
    try {
      if (!file) return undefined;
      const ticket = ++state.opens;
      const answer = await client.inspect(file);
      if (ticket === state.opens) show_(answer, null);
      return answer;
    } finally {
      after?.();
    }
  }

  function show_(answer, view) {
    setDiffFrom(null);
    state.current = answer;
    state.currentView = answer?.file?.uploaded ? null : view ?? fileView(answer?.file);
    state.inspector = renderInspector(doc, answer, {
      app, apiURL,
      on: {
        loadWorkflow: (plan) => run(() => loadWorkflow(plan)),
        reproduce: () => run(() => reproduce()),
        diff: () => setDiffFrom(state.diffFrom ? null : state.currentView),
        copy: (text) => run(() => copy(text)),
      },
    });
    clear(inspectorHolder).appendChild(state.inspector.element);
  }

  async function loadWorkflow(plan) {
    const answer = state.current;
    if (plan?.kind === "workflow") await app.loadGraphData(answer.workflow);
    else if (plan?.kind === "prompt") await app.loadApiJson(answer.prompt, show(answer?.file?.filename));
    else throw new Error(plan?.reason || "nothing to load");
    notice.textContent = `Loaded the workflow of ${show(answer?.file?.filename)}`;
  }

  async function reproduce() {
    const view = state.currentView;
    if (!view) throw new Error("a dropped file cannot be reproduced: pick it from the gallery");
    const target = state.inspector.reproduceResult;
    clear(target).appendChild(el(doc, "div", { className: "provenance-muted", text: "Checking what the server has…" }));
    const answer = await client.reproduce(view, true);
    renderReport(doc, target, answer, { onQueue: () => run(() => queue(view, target)) });
    return answer;
  }

  async function queue(view, target) {
    const answer = await client.reproduce(view, false);
    renderReport(doc, target, answer, { queued: true });
    return answer;
  }

  function setDiffFrom(view) {
    state.diffFrom = view || null;
    const button = state.inspector?.buttons?.diff;
    button?.setAttribute("aria-pressed", state.diffFrom ? "true" : "false");
    diffHint.textContent = state.diffFrom ? `Diff: pick the file to compare ${state.diffFrom.filename} with in the gallery` : "";
  }

  async function compare(a, b) {
    const target = state.inspector?.diffResult;
    setDiffFrom(null);
    const answer = await client.diff(a, b);
    if (target) renderDiff(doc, target, answer);
    return answer;
  }

  async function copy(text) {
    const done = await copyText(text, { doc, nav });
    notice.textContent = done ? "A1111 parameters copied" : "Copy failed: select the text and copy it by hand";
  }

  return {
    element,
    /** Status line and the first page; resolves when both are shown (errors shown, not thrown). */
    mount: () => Promise.all([run(() => refreshStatus()), run(() => search(0))]).then(() => undefined),
    refreshStatus: () => run(() => refreshStatus()),
    search: (offset = 0) => run(() => search(offset)),
    open: (view) => run(() => open(view)),
    inspectFile: (file) => run(() => inspectFile(file)),
    /** Resolves when every action started so far has finished (tests, and callers that chain). */
    settled: async () => {
      while (inflight.size) await Promise.all([...inflight]);
    },
    get state() {
      return state;
    },
  };
}

/** The answer's own {filename, subfolder, type}, when it names a file on the server. */
function fileView(file) {
  if (!file || file.uploaded || !file.filename) return null;
  return { filename: show(file.filename), subfolder: show(file.subfolder ?? ""), type: show(file.type || "output") };
}

/** Drag and drop onto the zone. Events stop here: the canvas underneath would load the file as a workflow. */
function wireDrop(zone, onFile) {
  const hold = (ev) => {
    ev.preventDefault?.();
    ev.stopPropagation?.();
    zone.classList?.add("provenance-over");
  };
  zone.addEventListener("dragenter", hold);
  zone.addEventListener("dragover", hold);
  zone.addEventListener("dragleave", () => zone.classList?.remove("provenance-over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault?.();
    ev.stopPropagation?.();
    zone.classList?.remove("provenance-over");
    const file = ev.dataTransfer?.files?.[0];
    if (file) onFile(file);
  });
}
