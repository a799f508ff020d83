// Integrity: the tenant's hash chain checked on the server (GET /audit/verify).

import * as api from "./api.js";
import { $, el } from "./dom.js";

let tenant = null;

export function setup(slug) {
  tenant = slug;
  $("verify-result").hidden = true;
  $("verify-fields").replaceChildren();
}

function field(name, content) {
  return [el("dt", {}, name), el("dd", {}, content)];
}

function show(result) {
  const box = $("verify-result");
  box.className = `verdict ${result.ok ? "pass" : "fail"}`;
  $("verify-headline").textContent = result.ok
    ? `Intact: all ${result.events_checked} events verified`
    : `Broken at seq ${result.first_broken_seq}`;
  $("verify-fields").replaceChildren(
    ...(result.ok ? [] : field("What is wrong", result.reason)),
    ...field(result.ok ? "Events verified" : "Events verified before it", String(result.events_checked)),
    ...field("Last verified event", result.last_seq ? `seq ${result.last_seq}` : "none"),
    ...field("Its hash", el("code", {}, result.last_hash)),
    ...field("Checked at", new Date().toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")),
  );
  box.hidden = false;
}

export function bind(report) {
  const button = $("verify-run");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Checking…";
    try {
      show(await api.getJson(`/v1/tenants/${encodeURIComponent(tenant)}/audit/verify`));
    } catch (error) {
      report(error);
    } finally {
      button.disabled = false;
      button.textContent = "Check the chain now";
    }
  });
}
