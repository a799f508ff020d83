// The console's flow: sign in (and replace a one-time password), then the three views.

import * as access from "./access.js";
import * as api from "./api.js";
import * as audit from "./audit.js";
import { $ } from "./dom.js";
import * as evaluate from "./evaluate.js";
import * as integrity from "./integrity.js";
import * as live from "./live.js";

const VIEWS = {
  signin: "Sign in",
  password: "Set a new password",
  refused: "No access to the audit trail",
  access: "Access",
  audit: "Audit trail",
  integrity: "Integrity",
  evaluate: "Evaluate access",
};
const CONSOLE_VIEWS = ["access", "audit", "integrity", "evaluate"];

let tenant = null; // set once signed in with audit:read
let oneTime = null; // { email, tenant, password } only while a one-time password is replaced

function show(name, { focus = true } = {}) {
  for (const view of Object.keys(VIEWS)) $(`view-${view}`).hidden = view !== name;
  const inConsole = CONSOLE_VIEWS.includes(name);
  $("nav").hidden = !inConsole;
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("who").hidden = name === "signin";
  document.title = `${VIEWS[name]} · tenantgate security console`;
  const heading = $(`view-${name}`).querySelector("h1");
  heading.tabIndex = -1; // focusable by script, so a screen reader announces the new view
  if (focus) heading.focus();
}

function clearMessages() {
  $("error").hidden = true;
  $("notice").hidden = true;
}

/** Show an error in words: an API error with its status and request id, or a sentence. */
function report(error, prefix = "") {
  if (error && error.endedSession && !prefix) return; // onSessionEnded said it already
  let text = String(error);
  if (error instanceof api.ApiError) text = error.text;
  else if (error instanceof Error) text = `Unexpected error: ${error.message}`;
  $("notice").hidden = true;
  $("error").textContent = prefix + text;
  $("error").hidden = false;
}

function notice(text) {
  $("error").hidden = true;
  $("notice").textContent = text;
  $("notice").hidden = false;
}

function signedOut(message) {
  live.stop();
  tenant = null;
  oneTime = null;
  access.clear();
  show("signin");
  $("signin-email").focus();
  if (message) notice(message);
}

async function busy(form, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    report(error);
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

async function enter(email, slug, password, scopes) {
  if (scopes.length === 0) {
    oneTime = { email, tenant: slug, password };
    $("who-text").textContent = email;
    show("password");
    $("password-new").focus();
    return;
  }
  const me = await api.me();
  if (!scopes.includes("audit:read") || !me.tenant) {
    const where = me.tenant ? `in tenant ${me.tenant}` : "on the platform (no tenant)";
    $("refused-detail").textContent =
      `You are signed in as ${email} ${where}; your token holds ${scopes.join(", ")}.`;
    $("who-text").textContent = `${email} · ${me.tenant || "platform"}`;
    show("refused");
    return;
  }
  const matrix = await access.load(me.tenant);
  const self = matrix.members.find((member) => member.user_id === me.subject);
  tenant = me.tenant;
  audit.setup(tenant);
  live.setup(tenant);
  integrity.setup(tenant);
  evaluate.setup(tenant, matrix);
  $("who-text").textContent = `${self ? self.email : email} · ${self ? self.role : "member"} · tenant ${tenant}`;
  const wanted = location.hash.slice(1);
  if (!CONSOLE_VIEWS.includes(wanted)) history.replaceState(null, "", "#access");
  await route();
}

/** A session that cannot show its first view (say the server answers 503) is not kept. */
async function enterOrSignOut(email, slug, password, scopes) {
  try {
    await enter(email, slug, password, scopes);
  } catch (error) {
    tenant = null;
    show("signin", { focus: false });
    await api.signOut().catch(() => {});
    throw error;
  }
}

async function route() {
  if (tenant === null) return;
  const view = CONSOLE_VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "access";
  show(view);
  if (view === "audit" && !audit.loaded()) {
    try {
      await audit.load();
    } catch (error) {
      report(error);
    }
  }
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearMessages();
  if (!form.reportValidity()) return;
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  const slug = form.elements.tenant.value.trim();
  busy(form, async () => {
    const scopes = await api.signIn(email, password, slug);
    form.reset();
    await enterOrSignOut(email, slug, password, scopes);
  });
});

$("password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearMessages();
  if (!form.reportValidity()) return;
  const next = form.elements.new.value;
  if (next !== form.elements.repeat.value) {
    report("The two passwords differ.");
    form.elements.repeat.focus();
    return;
  }
  busy(form, async () => {
    const { email, tenant: slug, password } = oneTime;
    await api.changePassword(password, next);
    oneTime = null;
    form.reset();
    notice("Password changed. Every other session of yours was ended.");
    await enterOrSignOut(email, slug, next, await api.signIn(email, next, slug));
  });
});

async function signOut() {
  clearMessages();
  try {
    await api.signOut();
    signedOut("Signed out: the tokens were revoked on the server.");
  } catch (error) {
    signedOut();
    report(error, "Signed out of this page, but the server did not revoke the tokens: ");
  }
}

$("sign-out").addEventListener("click", signOut);
$("refused-sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", () => {
  clearMessages();
  route();
});
api.onSessionEnded((error) => {
  signedOut();
  report(error, "Your session ended; sign in again. ");
});
audit.bind(report, notice);
live.bind();
integrity.bind(report);
evaluate.bind(report);
signedOut();
