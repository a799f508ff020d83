// Evaluate: why may (or may not) a member or client call a route (POST /access/evaluate).
// The principals and route templates offered come from the access matrix already read.

import * as api from "./api.js";
import { $, el, scopeList } from "./dom.js";

let tenant = null;

/** Offer the tenant's members and clients, and its routes' templates. */
export function setup(slug, matrix) {
  tenant = slug;
  const principal = $("evaluate-principal");
  principal.replaceChildren(
    el(
      "optgroup",
      { label: "Members" },
      ...matrix.members.map((m) => el("option", { value: m.user_id }, `${m.email} (${m.role})`)),
    ),
    el(
      "optgroup",
      { label: "Clients" },
      ...matrix.clients.map((c) =>
        el("option", { value: `client:${c.client_id}` }, `${c.name} (${c.client_id})`),
      ),
    ),
  );
  const templates = [...new Set(matrix.routes.map((route) => route.path))];
  $("evaluate-routes").replaceChildren(...templates.map((path) => el("option", { value: path })));
  $("evaluate-result").hidden = true;
}

function field(name, content) {
  return [el("dt", {}, name), el("dd", {}, content)];
}

function show(answer, label) {
  const box = $("evaluate-result");
  box.className = `verdict ${answer.allowed ? "pass" : "fail"}`;
  const first = answer.reasons[0];
  $("evaluate-headline").textContent = answer.allowed
    ? `Allowed: ${label} may call ${answer.route}`
    : `Denied (HTTP ${first.status}): ${first.detail}`;
  $("evaluate-fields").replaceChildren(
    ...field("Principal", `${label} · ${answer.principal}`),
    ...field("Route", answer.route ? el("code", {}, answer.route) : "none: no route matches"),
    ...field("Role", answer.role || (answer.principal.startsWith("client:") ? "a client: no role" : "none")),
    ...field("Required scopes", scopeList(answer.required_scopes)),
    ...field("Granted scopes", scopeList(answer.granted_scopes)),
    ...field("Missing scopes", scopeList(answer.missing_scopes)),
    ...(answer.allowed ? [] : field("Why, stage by stage", reasons(answer.reasons))),
  );
  box.hidden = false;
}

/** The reasons in the order the guard stages run: the first is what a live request gets. */
function reasons(list) {
  return el(
    "ol",
    { id: "evaluate-reasons", class: "reasons" },
    ...list.map((reason) =>
      el(
        "li",
        {},
        el("code", {}, reason.code),
        ` at the ${reason.stage} stage (HTTP ${reason.status}): ${reason.detail}`,
      ),
    ),
  );
}

export function bind(report) {
  const form = $("evaluate-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const button = form.querySelector("button[type=submit]");
    const principal = form.elements.principal;
    const question = {
      principal: principal.value,
      method: form.elements.method.value,
      path: form.elements.path.value.trim(),
    };
    button.disabled = true;
    try {
      const path = `/v1/tenants/${encodeURIComponent(tenant)}/access/evaluate`;
      const answer = await api.askJson(path, question);
      show(answer, principal.selectedOptions[0].textContent);
    } catch (error) {
      $("evaluate-result").hidden = true;
      report(error);
    } finally {
      button.disabled = false;
    }
  });
}
