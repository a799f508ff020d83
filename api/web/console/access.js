// Access: the live route x scope x role matrix, then who holds which scopes in the tenant.

import * as api from "./api.js";
import { $, el, fill, scopeList, setOptions, shortTime, withCode } from "./dom.js";

let matrix = null;

/** Read the tenant's matrix (GET /audit/access) and draw it; returns it. */
export async function load(tenant) {
  matrix = await api.getJson(`/v1/tenants/${encodeURIComponent(tenant)}/audit/access`);
  const roles = matrix.roles.map((row) => row.role);
  const scopes = new Set(matrix.routes.flatMap((row) => row.scopes));
  matrix.roles.forEach((row) => row.scopes.forEach((scope) => scopes.add(scope)));
  setOptions($("access-role"), roles);
  setOptions($("access-scope"), [...scopes].sort());
  $("routes-head").replaceChildren(
    ...["Method", "Path", "Required scopes", "Guards"].map((name) => el("th", { scope: "col" }, name)),
    ...roles.map((role) => el("th", { scope: "col", class: "role" }, role)),
  );
  render();
  return matrix;
}

export function clear() {
  matrix = null;
  for (const id of ["routes-table", "members-table", "clients-table", "sessions-table"]) {
    $(id).tBodies[0].replaceChildren();
  }
  $("routes-head").replaceChildren();
  $("access-filter").reset();
}

function current() {
  return {
    role: $("access-role").value,
    scope: $("access-scope").value,
    path: $("access-path").value.trim().toLowerCase(),
  };
}

function reach(route, role) {
  if (!route.roles.includes(role)) {
    return el("td", { class: "reach no" }, el("span", { class: "sr" }, "no"));
  }
  return el(
    "td",
    { class: "reach yes" },
    el("span", { "aria-hidden": "true" }, "✓"),
    el("span", { class: "sr" }, `${role} reaches it`),
  );
}

/** Who may call a route that no tenant role reaches: blank ticks would read as "nobody". */
function openTo(route) {
  if (route.guards === "public") return "anyone: no token needed";
  if (!route.scopes.length) return "any valid token: the caller's own account";
  if (route.scopes.includes("platform:admin")) return "platform administrators only";
  return "no tenant role holds all these scopes";
}

function reachCells(route, roles) {
  if (route.roles.length) return roles.map((role) => reach(route, role));
  return [el("td", { colspan: roles.length, class: "reach open" }, openTo(route))];
}

function routeRow(route, roles) {
  return el(
    "tr",
    { class: route.guards === "public" ? "public" : null },
    el("td", {}, el("span", { class: `method ${route.method.toLowerCase()}` }, route.method)),
    el("th", { scope: "row" }, el("code", {}, route.path), el("span", { class: "summary" }, ...withCode(route.summary))),
    el("td", {}, scopeList(route.scopes)),
    el("td", { class: "guards" }, route.guards),
    ...reachCells(route, roles),
  );
}

function render() {
  if (!matrix) return;
  const filter = current();
  const roles = matrix.roles.map((row) => row.role);
  const routes = matrix.routes.filter(
    (route) =>
      (!filter.role || route.roles.includes(filter.role)) &&
      (!filter.scope || route.scopes.includes(filter.scope)) &&
      (!filter.path || route.path.toLowerCase().includes(filter.path)),
  );
  const holds = (row) => !filter.scope || row.scopes.includes(filter.scope);
  const members = matrix.members.filter((m) => (!filter.role || m.role === filter.role) && holds(m));
  // Clients have scopes, not roles: only the scope filter applies to them.
  const clients = matrix.clients.filter(holds);
  const emails = new Map(matrix.members.map((m) => [m.user_id, m]));
  const sessions = matrix.sessions.filter((s) => {
    const member = emails.get(s.user_id);
    return !filter.role || (member && member.role === filter.role);
  });
  fill($("routes-table").tBodies[0], routes.map((route) => routeRow(route, roles)), "No route matches the filters.");
  fill(
    $("members-table").tBodies[0],
    members.map((m) =>
      el("tr", { class: m.active ? null : "inactive" },
        el("th", { scope: "row" }, m.email),
        el("td", {}, m.role),
        el("td", {}, m.active ? "yes" : "no (deactivated)"),
        el("td", {}, scopeList(m.scopes))),
    ),
    "No member matches the filters.",
  );
  fill(
    $("clients-table").tBodies[0],
    clients.map((c) =>
      el("tr", {},
        el("th", { scope: "row" }, el("code", {}, c.client_id)),
        el("td", {}, c.name),
        el("td", {}, scopeList(c.scopes)),
        el("td", {}, emails.get(c.created_by)?.email || c.created_by),
        el("td", {}, c.last_used_at ? shortTime(c.last_used_at) : "never")),
    ),
    filter.scope ? "No client holds this scope." : "This tenant has no OAuth clients.",
  );
  fill(
    $("sessions-table").tBodies[0],
    sessions.map((s) =>
      el("tr", {},
        el("th", { scope: "row" }, emails.get(s.user_id)?.email || s.user_id),
        el("td", {}, el("code", {}, s.client_id)),
        el("td", { class: "num" }, String(s.open_sessions)),
        el("td", {}, shortTime(s.last_issued_at)),
        el("td", {}, shortTime(s.expires_at))),
    ),
    "No open session matches the filters.",
  );
  const of = (shown, all, noun) => `${shown.length} of ${all.length} ${noun}`;
  $("access-count").textContent = [
    of(routes, matrix.routes, "routes"),
    of(members, matrix.members, "members"),
    of(clients, matrix.clients, "clients"),
  ].join(" · ");
}

$("access-filter").addEventListener("input", render);
$("access-filter").addEventListener("submit", (event) => event.preventDefault());
