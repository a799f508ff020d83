// The console's only door to the server: the public API, with the signed-in user's token.
// The tokens live in this module's variables only (never localStorage, sessionStorage or a
// cookie): a reload or a closed tab ends the session.

const CLIENT_ID = "tenantgate"; // the first-party public client (no secret)
const CONSOLE_SCOPE = "audit:read"; // all the console reads; the token asks for nothing more
const REFRESH_AT = 0.8; // share of the access token's lifetime after which it is refreshed
const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

let tokens = null; // { access, refresh, scopes }
let timer = 0;
let refreshing = null;
let ended = () => {};

/** A failed call, in words, with the request id the server logged it under. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "", requestId = "" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }

  get text() {
    if (!this.status) return this.message;
    const id = this.requestId ? `, request id ${this.requestId}` : "";
    return `${this.message} (HTTP ${this.status}${id})`;
  }
}

/** Called with an ApiError when the session ends without the user signing out. */
export function onSessionEnded(callback) {
  ended = callback;
}

/** The current access token, for the one call fetch cannot make: the audit WebSocket. */
export function accessToken() {
  return tokens ? tokens.access : null;
}

export function signedIn() {
  return tokens !== null;
}

async function send(path, init) {
  try {
    return await fetch(path, { ...init, credentials: "omit", cache: "no-store" });
  } catch {
    throw new ApiError("The server could not be reached: check the connection and try again.");
  }
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  let message = response.statusText || "The request failed";
  let code = "";
  if (body && typeof body.title === "string") {
    // RFC 9457 problem details
    message = body.detail ? `${body.title}: ${body.detail}` : body.title;
    code = String(body.type || "");
  } else if (body && typeof body.error === "string") {
    // RFC 6749 token endpoint error
    message = body.error_description || body.error;
    code = body.error;
  }
  const requestId = (body && body.request_id) || response.headers.get("x-request-id") || "";
  return new ApiError(message, { status: response.status, code, requestId });
}

async function tokenRequest(fields) {
  const response = await send("/token", {
    method: "POST",
    headers: FORM,
    body: new URLSearchParams(fields),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

function keep(body) {
  tokens = {
    access: body.access_token,
    refresh: body.refresh_token || null,
    scopes: String(body.scope || "").split(" ").filter(Boolean),
  };
  clearTimeout(timer);
  if (tokens.refresh) {
    timer = setTimeout(() => refresh().catch(end), body.expires_in * REFRESH_AT * 1000);
  }
}

function forget() {
  const held = tokens;
  tokens = null;
  clearTimeout(timer);
  return held;
}

function end(error) {
  if (forget() === null) return;
  error.endedSession = true; // reported once, by the `ended` callback
  ended(error);
}

/** Sign in with a password; returns the scopes granted (empty: a one-time password). */
export async function signIn(email, password, tenant) {
  const form = { grant_type: "password", username: email, password, scope: CONSOLE_SCOPE };
  if (tenant) form.tenant = tenant;
  let body;
  try {
    try {
      body = await tokenRequest(form);
    } catch (error) {
      if (error.code !== "invalid_scope") throw error;
      // The password was right, but audit:read was refused: a role without it, or a one-time
      // password. Signing in without a scope tells which (and shows who is signed in).
      delete form.scope;
      body = await tokenRequest(form);
    }
  } catch (error) {
    if (error.status) error.message = `Sign-in refused: ${error.message}`;
    throw error;
  }
  keep(body);
  return tokens.scopes;
}

/** One refresh at a time: a second one would present a spent refresh token (reuse). */
export function refresh() {
  if (refreshing === null) {
    refreshing = (async () => {
      if (!tokens || !tokens.refresh) throw new ApiError("Your session has ended.");
      keep(await tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh }));
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function authorized(path, { headers = {}, ...init } = {}, retry = true) {
  if (!tokens) throw new ApiError("You are signed out.");
  const response = await send(path, {
    ...init,
    headers: { ...headers, Authorization: `Bearer ${tokens.access}` },
  });
  if (response.status === 401 && retry && tokens && tokens.refresh) {
    try {
      await refresh();
    } catch (error) {
      end(error);
      throw error;
    }
    return authorized(path, { headers, ...init }, false);
  }
  if (!response.ok) {
    const error = await failure(response);
    if (response.status === 401) end(error);
    throw error;
  }
  return response;
}

function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export async function getJson(path, params) {
  const response = await authorized(withQuery(path, params), {
    headers: { Accept: "application/json" },
  });
  return response.json();
}

/** A question sent as JSON that changes nothing (POST /access/evaluate). */
export async function askJson(path, body) {
  const response = await authorized(path, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

/** The response body as a file: its blob and the name the server suggests. */
export async function download(path, params, accept, fallbackName) {
  const response = await authorized(withQuery(path, params), { headers: { Accept: accept } });
  const disposition = response.headers.get("content-disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  return { blob: await response.blob(), filename: match ? match[1] : fallbackName };
}

export async function me() {
  return getJson("/v1/me");
}

/** Replace a (one-time) password; the server then revokes every refresh token of the user. */
export async function changePassword(current, next) {
  if (!tokens) throw new ApiError("You are signed out.");
  const response = await send("/v1/me/password", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${tokens.access}` },
    body: JSON.stringify({ current_password: current, new_password: next }),
  });
  if (!response.ok) throw await failure(response);
  await signOut();
}

async function revoke(token) {
  const response = await send("/revoke", {
    method: "POST",
    headers: FORM,
    body: new URLSearchParams({ token, client_id: CLIENT_ID }),
  });
  if (!response.ok) throw await failure(response);
}

/** Forget the tokens, then revoke them: the refresh family, and the access token at once. */
export async function signOut() {
  const held = forget();
  if (held === null) return;
  const results = await Promise.allSettled(
    [held.refresh, held.access].filter(Boolean).map((token) => revoke(token)),
  );
  const failed = results.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
}
