/** A few DOM helpers over a `document` passed in, so every builder also runs on the tests' fake document. */

/**
 * An element with its text, attributes and children. Text only ever goes in through textContent and
 * attributes through setAttribute: records are hostile input, and no builder here writes innerHTML.
 */
export function el(doc, tag, props = {}, children = []) {
  const node = doc.createElement(tag);
  const { testid, className, text, attrs, on, ...plain } = props;
  if (testid) node.setAttribute("data-testid", testid);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : String(value));
  }
  // Properties (value, disabled, hidden, type, title…) set as properties: the browser reflects them.
  for (const [key, value] of Object.entries(plain)) {
    if (value !== undefined) node[key] = value;
  }
  for (const [type, handler] of Object.entries(on ?? {})) node.addEventListener(type, handler);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "string" ? doc.createTextNode(child) : child);
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** A button that is off with its reason in the tooltip (a disabled button shows no click error). */
export function disable(button, reason) {
  button.disabled = true;
  if (reason) button.title = reason;
  button.setAttribute("data-disabled-reason", reason || "");
  return button;
}

/** A two-column table of {label, value} rows; each value cell may carry a test id keyed by the row's key. */
export function table(doc, rows, { testids = {}, className = "provenance-rows" } = {}) {
  const body = el(doc, "tbody");
  for (const row of rows) {
    body.appendChild(el(doc, "tr", {}, [
      el(doc, "th", { text: row.label, attrs: { scope: "row" } }),
      el(doc, "td", { text: row.value, testid: testids[row.key ?? row.label] }),
    ]));
  }
  return el(doc, "table", { className }, [body]);
}

/** Copy text to the clipboard: the async API where allowed, else a hidden textarea and execCommand. */
export async function copyText(text, { doc, nav } = {}) {
  try {
    if (nav?.clipboard?.writeText) {
      await nav.clipboard.writeText(text);
      return true;
    }
  } catch {
    // not a secure context, or permission refused: fall through to the old way
  }
  if (!doc?.body || typeof doc.execCommand !== "function") return false;
  const area = el(doc, "textarea", { value: text, attrs: { readonly: true, "aria-hidden": "true" } });
  area.style.position = "fixed";
  area.style.opacity = "0";
  doc.body.appendChild(area);
  try {
    area.select?.();
    return Boolean(doc.execCommand("copy"));
  } catch {
    return false;
  } finally {
    area.parentNode?.removeChild(area);
  }
}
