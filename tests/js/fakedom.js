/** A minimal DOM for the builders' tests: the few calls web/lib uses, and innerHTML refused outright. */

class FakeNode {
  constructor(doc) {
    this.ownerDocument = doc;
    this.parentNode = null;
    this.childNodes = [];
  }

  get firstChild() {
    return this.childNodes[0] ?? null;
  }

  appendChild(child) {
    if (child.parentNode) child.parentNode.removeChild(child);
    child.parentNode = this;
    this.childNodes.push(child);
    return child;
  }

  append(...children) {
    for (const c of children) this.appendChild(typeof c === "string" ? this.ownerDocument.createTextNode(c) : c);
  }

  removeChild(child) {
    const i = this.childNodes.indexOf(child);
    if (i < 0) throw new Error("not a child");
    this.childNodes.splice(i, 1);
    child.parentNode = null;
    return child;
  }

  remove() {
    this.parentNode?.removeChild(this);
  }
}

export class FakeText extends FakeNode {
  constructor(doc, text) {
    super(doc);
    this.nodeType = 3;
    this.data = String(text);
  }

  get textContent() {
    return this.data;
  }

  set textContent(v) {
    this.data = String(v);
  }
}

export class FakeElement extends FakeNode {
  constructor(doc, tag) {
    super(doc);
    this.nodeType = 1;
    this.tagName = String(tag).toUpperCase();
    this.attributes = new Map();
    this.listeners = new Map();
    this.style = {};
    const self = this;
    this.classList = {
      add: (...names) => self._classes(new Set([...self._classSet(), ...names])),
      remove: (...names) => self._classes(new Set([...self._classSet()].filter((n) => !names.includes(n)))),
      contains: (name) => self._classSet().has(name),
      toggle: (name, force) => {
        const on = force ?? !self._classSet().has(name);
        if (on) self.classList.add(name);
        else self.classList.remove(name);
        return on;
      },
    };
  }

  _classSet() {
    return new Set(String(this.attributes.get("class") ?? "").split(/\s+/).filter(Boolean));
  }

  _classes(set) {
    this.attributes.set("class", [...set].join(" "));
  }

  get className() {
    return this.attributes.get("class") ?? "";
  }

  set className(v) {
    this.attributes.set("class", String(v));
  }

  get id() {
    return this.attributes.get("id") ?? "";
  }

  set id(v) {
    this.attributes.set("id", String(v));
  }

  get children() {
    return this.childNodes.filter((n) => n.nodeType === 1);
  }

  get textContent() {
    return this.childNodes.map((n) => n.textContent).join("");
  }

  set textContent(v) {
    for (const child of this.childNodes) child.parentNode = null;
    this.childNodes = [];
    if (v !== "" && v !== null && v !== undefined) this.appendChild(new FakeText(this.ownerDocument, v));
  }

  get innerHTML() {
    throw new Error("innerHTML read: web/lib must not use it");
  }

  set innerHTML(v) {
    throw new Error("innerHTML written: web/lib must not use it");
  }

  insertAdjacentHTML() {
    throw new Error("insertAdjacentHTML: web/lib must not use it");
  }

  setAttribute(name, value) {
    this.attributes.set(String(name).toLowerCase(), String(value));
  }

  getAttribute(name) {
    const v = this.attributes.get(String(name).toLowerCase());
    return v === undefined ? null : v;
  }

  hasAttribute(name) {
    return this.attributes.has(String(name).toLowerCase());
  }

  removeAttribute(name) {
    this.attributes.delete(String(name).toLowerCase());
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  removeEventListener(type, fn) {
    this.listeners.set(type, (this.listeners.get(type) ?? []).filter((f) => f !== fn));
  }

  dispatchEvent(event) {
    const ev = event;
    ev.target ??= this;
    ev.defaultPrevented ??= false;
    ev.preventDefault ??= () => { ev.defaultPrevented = true; };
    ev.stopPropagation ??= () => { ev.propagationStopped = true; };
    for (const fn of this.listeners.get(ev.type) ?? []) fn(ev);
    return !ev.defaultPrevented;
  }

  /** Like a browser: a disabled control ignores clicks. */
  click() {
    if (this.disabled) return;
    this.dispatchEvent({ type: "click" });
  }

  select() {}

  *walk() {
    for (const child of this.children) {
      yield child;
      yield* child.walk();
    }
  }

  querySelectorAll(selector) {
    const match = compile(selector);
    return [...this.walk()].filter(match);
  }

  querySelector(selector) {
    return this.querySelectorAll(selector)[0] ?? null;
  }
}

/** One compound selector: tag, .class…, [attr] or [attr="value"] — enough for the tests. */
function compile(selector) {
  const m = /^([a-zA-Z0-9-]*)((?:\.[\w-]+)*)((?:\[[^\]]+\])*)$/.exec(selector.trim());
  if (!m) throw new Error(`fake DOM cannot match ${selector}`);
  const tag = m[1].toUpperCase();
  const classes = m[2].split(".").filter(Boolean);
  const attrs = [...m[3].matchAll(/\[([\w-]+)(?:=["']?([^"'\]]*)["']?)?\]/g)].map((a) => [a[1], a[2]]);
  return (node) => (!tag || node.tagName === tag)
    && classes.every((c) => node.classList.contains(c))
    && attrs.every(([name, value]) => (value === undefined ? node.hasAttribute(name) : node.getAttribute(name) === value));
}

export class FakeDocument {
  constructor() {
    this.head = new FakeElement(this, "head");
    this.body = new FakeElement(this, "body");
    this.copied = [];
    this.execCommandWorks = true;
  }

  createElement(tag) {
    return new FakeElement(this, tag);
  }

  createTextNode(text) {
    return new FakeText(this, text);
  }

  getElementById(id) {
    for (const root of [this.head, this.body]) {
      for (const node of root.walk()) if (node.id === id) return node;
    }
    return null;
  }

  execCommand(command) {
    if (command !== "copy" || !this.execCommandWorks) return false;
    const area = [...this.body.walk()].find((n) => n.tagName === "TEXTAREA");
    this.copied.push(area?.value);
    return true;
  }
}

/** The element with data-testid=`id` under `root` (throws when absent, so a test names what is missing). */
export function byTestId(root, id) {
  const found = root.querySelector(`[data-testid="${id}"]`);
  if (!found) throw new Error(`no element with data-testid=${id}`);
  return found;
}

export function allByTestId(root, id) {
  return root.querySelectorAll(`[data-testid="${id}"]`);
}
