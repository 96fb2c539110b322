// The payment-status page: /status/<room>/ (the POC's `pagamento_<id>`). The room's latest
// message is its current state, shown big; earlier ones are listed below, newest first. Meant
// for a latest-on-join room (--latest-on-join), so it shows the current state as soon as it
// opens; it works in an iframe (no navigation, no fixed height).

import { RoomFollower } from "/static/follow.js";
import { RoomConnection, clock, missingText, pageParams, roomFromPath, stateText } from "/static/roomcast.js";

/** Entries kept in the history list. */
const MAX_HISTORY = 200;

/** Words that colour the state: green when done, amber while waiting, red when it failed.
 *  Portuguese too, since the first users' statuses were (pago, pendente, recusado). */
const TONES = {
  ok: ["paid", "pago", "approved", "aprovado", "confirmed", "confirmado", "done", "completed", "succeeded"],
  warn: ["pending", "pendente", "processing", "processando", "waiting", "aguardando", "created", "criado"],
  bad: ["failed", "falhou", "refused", "recusado", "declined", "cancelled", "canceled", "cancelado", "expired", "expirado", "error"],
};

function tone(text) {
  const word = text.trim().toLowerCase().split(/[\s:.,;!]+/)[0];
  for (const [name, words] of Object.entries(TONES)) if (words.includes(word)) return name;
  return "none";
}

const room = roomFromPath();
const { user, token } = pageParams();
const current = document.getElementById("current");
const value = document.getElementById("value");
const since = document.getElementById("since");
const history = document.getElementById("history");
const stateBadge = document.getElementById("state");
let latest = null;

document.getElementById("room-name").textContent = room;
document.title = `${room} · status`;

function remember(frame) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = clock(frame.ts);
  const text = document.createElement("span");
  text.textContent = frame.message;
  item.append(time, text);
  item.dataset.seq = frame.seq;
  history.prepend(item);
  while (history.children.length > MAX_HISTORY) history.lastElementChild.remove();
}

function show(frame) {
  latest = frame;
  value.textContent = frame.message;
  current.dataset.tone = tone(frame.message);
  since.textContent = `since ${clock(frame.ts)} · ${frame.user}`;
}

/** `?transport=sse` follows over Server-Sent Events only; otherwise a WebSocket, falling back
 *  to SSE when one cannot open at all (a proxy that breaks WebSockets). */
const onlySse = new URLSearchParams(location.search).get("transport") === "sse";
let connected = false;
let connection = null;

const callbacks = {
    state(state) {
      if (state.kind === "connected") connected = true;
      if (!connected && !onlySse && !state.transport && state.kind === "reconnecting" && state.code === 1006) {
        // The first WebSocket never opened: follow over SSE instead (the page only listens).
        connection.stop();
        connection = new RoomFollower(room, { on: callbacks });
        connection.start();
        return;
      }
      stateBadge.dataset.state = state.kind;
      stateBadge.dataset.transport = state.transport || "websocket";
      // Followers behind a proxy that breaks WebSockets see why the page still works.
      stateBadge.textContent = state.transport === "sse" ? `${stateText(state)} · over SSE` : stateText(state);
    },
    message(frame) {
      remember(frame);
      if (!latest || frame.ts >= latest.ts) show(frame);
    },
    missing({ count }) {
      const item = document.createElement("li");
      item.className = "gap";
      item.textContent = missingText(count);
      history.prepend(item);
    },
};

connection = onlySse ? new RoomFollower(room, { on: callbacks }) : new RoomConnection(room, { user, token, on: callbacks });
if (room) connection.start();
