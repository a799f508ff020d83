// Building the page with DOM calls only: text is always text, never parsed as HTML (the CSP's
// Trusted Types would refuse an HTML string anyway).

export const $ = (id) => document.getElementById(id);

/** el("td", { class: "num" }, "12", child, ...): props are attributes, "on..." are listeners. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name === "className" ? "class" : name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return node;
}

/** Replace a table body's rows; an empty list shows one row saying so. */
export function fill(tbody, rows, emptyText) {
  if (rows.length) {
    tbody.replaceChildren(...rows);
    return;
  }
  const columns = tbody.closest("table").tHead.rows[0].cells.length;
  tbody.replaceChildren(el("tr", {}, el("td", { colspan: columns, class: "empty" }, emptyText)));
}

/** Scopes as code chips, or a dash for none. */
export function scopeList(scopes) {
  if (!scopes.length) return el("span", { class: "none" }, "none");
  return el("span", { class: "scopes" }, ...scopes.map((scope) => el("code", {}, scope)));
}

/** `select`'s options after its first ("any") one. */
export function setOptions(select, values) {
  const keep = select.value;
  select.replaceChildren(select.options[0], ...values.map((value) => el("option", {}, value)));
  select.value = values.includes(keep) ? keep : "";
}

/** "2024-05-01T10:00:00.123456Z" as "2024-05-01 10:00:00" (the seconds a person reads). */
export function shortTime(value) {
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(value || "");
  return match ? `${match[1]} ${match[2]}` : value || "—";
}

/** Text whose `backquoted` parts (as OpenAPI summaries write them) become code elements. */
export function withCode(text) {
  return String(text)
    .split("`")
    .map((part, index) => (index % 2 ? el("code", {}, part) : part))
    .filter((part) => part !== "");
}
