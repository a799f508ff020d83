// Audit events as they commit: the WebSocket stream. The token travels as a subprotocol
// ("bearer", <token>), never in the URL; a drop or a renewed token resumes with from_seq, so
// nothing is missed or shown twice.

import * as api from "./api.js";
import { row } from "./audit.js";
import { $ } from "./dom.js";

const state = { tenant: null, socket: null, following: false, nextSeq: null, latest: null };
const LIVE = "Live: new events appear below as they are committed";

function status(text) {
  $("live-status").textContent = text;
}

function showStatus() {
  status(state.latest === null ? `${LIVE}.` : `${LIVE} (latest: seq ${state.latest}).`);
}

function streamUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = state.nextSeq ? `?from_seq=${state.nextSeq}` : "";
  return `${scheme}//${location.host}/v1/tenants/${encodeURIComponent(state.tenant)}/audit/stream${query}`;
}

function connect() {
  const token = api.accessToken();
  if (!token) return stop("Stopped: you are signed out.");
  const socket = new WebSocket(streamUrl(), ["bearer", token]);
  state.socket = socket;
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "ready") {
      state.nextSeq = data.next_seq;
      showStatus();
    } else if (data.type === "event") {
      state.nextSeq = data.event.seq + 1;
      state.latest = data.event.seq;
      $("live-table").tBodies[0].prepend(row(data.event));
      showStatus();
    }
  });
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket || !state.following) return;
    state.socket = null;
    if (event.code === 1008 && /expired/.test(event.reason)) {
      // The console renews its token before it expires: carry on with the new one.
      api.refresh().then(connect, () => stop("Stopped: your session has ended."));
    } else if (event.code === 1008) {
      stop(`Stopped: ${event.reason}.`);
    } else {
      status("Reconnecting…");
      setTimeout(() => state.following && connect(), 1000);
    }
  });
  return undefined;
}

export function stop(text = "") {
  state.following = false;
  const socket = state.socket;
  state.socket = null;
  if (socket) socket.close(1000);
  $("live-toggle").textContent = "Follow live";
  $("live-toggle").setAttribute("aria-pressed", "false");
  status(text);
}

export function setup(tenant) {
  stop();
  Object.assign(state, { tenant, nextSeq: null, latest: null });
  $("live-table").tBodies[0].replaceChildren();
  $("live-box").hidden = true;
}

export function bind() {
  $("live-toggle").addEventListener("click", () => {
    if (state.following) return stop("Stopped.");
    state.following = true;
    $("live-box").hidden = false;
    $("live-toggle").textContent = "Stop following";
    $("live-toggle").setAttribute("aria-pressed", "true");
    status("Connecting…");
    return connect();
  });
}
