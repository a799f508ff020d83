// Audit trail: filtered events in chain order, cursor pages, one event in full, exports.

import * as api from "./api.js";
import { $, el, fill, setOptions, shortTime } from "./dom.js";
import { ACTIONS, OUTCOMES } from "./vocabulary.js";

const form = $("audit-filter");
const state = { tenant: null, filters: {}, cursors: [null], page: 0, next: null, loaded: false };

$("audit-actions").replaceChildren(...ACTIONS.map((action) => el("option", { value: action })));
setOptions($("audit-outcome"), OUTCOMES);

function path(tenant) {
  return `/v1/tenants/${encodeURIComponent(tenant)}/audit/events`;
}

/** datetime-local gives a wall-clock time without a zone; the form labels it UTC. */
function utc(value) {
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

function readFilters() {
  const filters = {};
  for (const name of ["action", "actor", "outcome"]) {
    const value = form.elements[name].value.trim();
    if (value) filters[name] = value;
  }
  for (const name of ["since", "until"]) {
    const value = form.elements[name].value;
    if (value) filters[name] = utc(value);
  }
  return filters;
}

let settingUp = false; // form.reset() by setup() is not the user's "Clear"

export function setup(tenant) {
  Object.assign(state, { tenant, filters: {}, cursors: [null], page: 0, next: null, loaded: false });
  settingUp = true;
  form.reset();
  settingUp = false;
  $("events-table").tBodies[0].replaceChildren();
  $("page-label").textContent = "";
}

export function loaded() {
  return state.loaded;
}

/** Read the current page; on failure the page stays as it was. */
export async function load() {
  const params = {
    ...state.filters,
    limit: form.elements.limit.value,
    cursor: state.cursors[state.page],
  };
  const page = await api.getJson(path(state.tenant), params);
  state.loaded = true;
  state.next = page.next_cursor;
  fill($("events-table").tBodies[0], page.events.map(row), "No event matches the filters.");
  const first = page.events[0];
  const last = page.events[page.events.length - 1];
  const range = first ? `: seq ${first.seq} to ${last.seq}` : "";
  $("page-label").textContent = `Page ${state.page + 1}${range}`;
  $("page-prev").disabled = state.page === 0;
  $("page-next").disabled = !state.next;
}

/** One event as a row of the events table (the live table uses it too). */
export function row(event) {
  const actor = event.actor_subject ? `${event.actor_kind} ${event.actor_subject}` : event.actor_kind;
  return el(
    "tr",
    {},
    el("td", { class: "num" }, String(event.seq)),
    el("td", { class: "time" }, shortTime(event.time)),
    el("td", {}, actor),
    el("td", {}, el("code", {}, event.action)),
    el("td", { class: "target" }, event.target || "—"),
    el("td", {}, el("span", { class: `outcome ${event.outcome}` }, event.outcome)),
    el(
      "td",
      {},
      el("button", {
        type: "button",
        class: "link",
        "aria-label": `Open event ${event.seq}`,
        onclick: () => open(event),
      }, "Open"),
    ),
  );
}

function value(name, raw) {
  if (name === "details") return el("pre", {}, JSON.stringify(raw, null, 2));
  if (Array.isArray(raw)) return raw.length ? raw.join(" ") : "none";
  if (raw === null || raw === "") return el("span", { class: "none" }, "null");
  return el(name.endsWith("hash") ? "code" : "span", {}, String(raw));
}

function open(event) {
  $("event-title").textContent = `Event ${event.seq}: ${event.action}`;
  $("event-fields").replaceChildren(
    ...Object.entries(event).flatMap(([name, raw]) => [el("dt", {}, name), el("dd", {}, value(name, raw))]),
  );
  $("event-dialog").showModal();
}

async function exportAs(accept, extension, report, notice) {
  try {
    const { blob, filename } = await api.download(
      path(state.tenant), state.filters, accept, `audit-${state.tenant}.${extension}`,
    );
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    notice(`Downloaded ${filename} (${blob.size} bytes), the filtered range in chain order.`);
  } catch (error) {
    report(error);
  }
}

/** Wire the controls; `report` shows an error, `notice` a confirmation. */
export function bind(report, notice) {
  const run = (change) => async () => {
    const before = { ...state };
    change();
    try {
      await load();
    } catch (error) {
      Object.assign(state, before);
      report(error);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    run(() => Object.assign(state, { filters: readFilters(), cursors: [null], page: 0 }))();
  });
  form.addEventListener("reset", () => {
    if (settingUp) return;
    // After the browser has cleared the fields.
    setTimeout(run(() => Object.assign(state, { filters: {}, cursors: [null], page: 0 })));
  });
  $("page-next").addEventListener("click", run(() => {
    state.cursors = [...state.cursors.slice(0, state.page + 1), state.next];
    state.page += 1;
  }));
  $("page-prev").addEventListener("click", run(() => {
    state.page = Math.max(0, state.page - 1);
  }));
  $("export-csv").addEventListener("click", () => exportAs("text/csv", "csv", report, notice));
  $("export-ndjson").addEventListener("click", () =>
    exportAs("application/x-ndjson", "ndjson", report, notice),
  );
}
