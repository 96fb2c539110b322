// One room over the typed protocol (roomcast.v1), as every page uses it: connect, join with
// `since` so a reconnect replays exactly what was missed, reconnect with jittered backoff that
// honours the close code, and say what is happening through callbacks. No DOM in here.

export const SUBPROTOCOL = "roomcast.v1";

/** Reconnect schedule: 0.5 s doubling to 30 s, "equal jitter" (half to all of each step), the
 *  same as the terminal client, so a restarted server is not hit by every page at once. */
export const BACKOFF = { baseMs: 500, capMs: 30000 };

/** Close codes after which the same request would be refused again: do not reconnect. */
const FINAL_CLOSE = { min: 4500, max: 4999 };

/** Close codes that ask for a longer pause (try again later, flood): start further up. */
const PATIENT_CLOSE = new Set([1013, 4002]);
const PATIENT_START_ATTEMPT = 3;

/** When nothing is heard for this many server ping intervals, the link is presumed dead
 *  (a laptop that slept, a Wi-Fi that vanished) and the page reconnects. */
const SILENT_INTERVALS = 2.5;

/** The delay before retry `attempt` (0 first), between half and all of min(cap, base * 2^n). */
export function backoffDelay(attempt, random = Math.random) {
  const grown = Math.min(BACKOFF.capMs, BACKOFF.baseMs * 2 ** Math.min(attempt, 20));
  return (grown / 2) * (1 + random());
}

/** The page URL's parameters that matter to a connection: `user` and `token`. */
export function pageParams() {
  const query = new URLSearchParams(location.search);
  return { user: query.get("user") || "", token: query.get("token") || "" };
}

/** The room named in a `/chat/<room>/` or `/status/<room>/` path. */
export function roomFromPath() {
  const parts = location.pathname.split("/").filter(Boolean);
  return parts.length >= 2 ? decodeURIComponent(parts[1]) : "";
}

/** `HH:MM:SS` in the viewer's time zone. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/**
 * A room connection. Callbacks (all optional):
 * - state({kind, reason, code, inMs, user}): kind is connecting, connected, reconnecting, closed
 * - joined({members, fresh}) on every (re)join; fresh is true on the first one
 * - message(frame) for each chat message (replayed or live), in seq order, never twice
 * - presence({kind: "join"|"leave", user, reason})
 * - missing({count}) when a rejoin could not recover everything (count null: unknown)
 * - refused(errorFrame) when the server refused a frame of ours
 */
export class RoomConnection {
  constructor(room, { user = "", token = "", on = {} } = {}) {
    this.room = room;
    this.user = user;
    this.token = token;
    this.on = on;
    this.position = null; // {epoch, seq} of the last message shown
    this.attempt = 0;
    this.socket = null;
    this.ready = false;
    this.nextRef = 1;
    this.timers = { retry: 0, countdown: 0, silence: 0 };
    this.silenceMs = 0;
  }

  start() {
    this.open();
  }

  /** Stops for good: no reconnect (a page switching to another transport). */
  stop() {
    this.stopped = true;
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
  }

  /** Sends a chat message; false when not connected (the caller keeps the text). */
  publish(text) {
    if (!this.ready) return false;
    this.send({ type: "publish", room: this.room, message: text, ref: this.nextRef++ });
    return true;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams();
    if (this.user) query.set("user", this.user);
    if (this.token) query.set("token", this.token);
    const text = query.toString();
    return `${scheme}//${location.host}/ws${text ? `?${text}` : ""}`;
  }

  emit(name, value) {
    const callback = this.on[name];
    if (callback) callback(value);
  }

  open() {
    if (this.stopped) return;
    this.emit("state", { kind: this.attempt === 0 && !this.position ? "connecting" : "reconnecting", inMs: 0 });
    let socket;
    try {
      socket = new WebSocket(this.url(), SUBPROTOCOL);
    } catch (error) {
      this.emit("state", { kind: "closed", reason: String(error) });
      return;
    }
    this.socket = socket;
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.closed(event.code, event.reason);
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  receive(text) {
    this.heard();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.user = frame.user;
        this.silenceMs = (frame.server?.ping_interval_ms || 20000) * SILENT_INTERVALS;
        this.heard();
        // The first join asks from an epoch no room has: the server then replays all the
        // history it holds (PROTOCOL.md, "recovered: false"), which is the room's recent past.
        this.send({
          type: "join",
          room: this.room,
          since: this.position || { epoch: "", seq: 0 },
          ref: this.nextRef++,
        });
        break;
      case "joined":
        this.joined(frame);
        break;
      case "message":
        if (frame.room !== this.room) return;
        if (this.position && this.position.epoch === this.epoch && frame.seq <= this.position.seq) return;
        this.position = { epoch: this.epoch, seq: frame.seq };
        this.emit("message", frame);
        break;
      case "join":
      case "leave":
        if (frame.room === this.room) this.emit("presence", { kind: frame.type, user: frame.user, reason: frame.reason });
        break;
      case "error":
        this.emit("refused", frame);
        break;
      default:
        break;
    }
  }

  joined(frame) {
    const fresh = this.position === null;
    const since = this.position;
    this.epoch = frame.epoch;
    if (!fresh && frame.recovered === false) {
      const count = since.epoch === frame.epoch ? Math.max(0, frame.seq - since.seq - frame.replay) : null;
      this.emit("missing", { count });
    }
    if (!fresh && since.epoch !== frame.epoch) {
      // A new history: its seqs start again, so nothing in it is a duplicate.
      this.position = { epoch: frame.epoch, seq: 0 };
    }
    if (fresh) this.position = { epoch: frame.epoch, seq: 0 };
    this.attempt = 0;
    this.ready = true;
    this.emit("joined", { members: frame.members, fresh });
    this.emit("state", { kind: "connected", user: this.user });
  }

  heard() {
    clearTimeout(this.timers.silence);
    if (!this.silenceMs) return;
    this.timers.silence = setTimeout(() => {
      // 4000 is the heartbeat code; the server's own 4000 means the same thing.
      if (this.socket) this.socket.close(4000, "no frame from the server in time");
    }, this.silenceMs);
  }

  closed(code, reason) {
    clearTimeout(this.timers.silence);
    this.ready = false;
    this.socket = null;
    const why = describeClose(code, reason);
    if (code >= FINAL_CLOSE.min && code <= FINAL_CLOSE.max) {
      this.emit("state", { kind: "closed", code, reason: why });
      return;
    }
    if (PATIENT_CLOSE.has(code)) this.attempt = Math.max(this.attempt, PATIENT_START_ATTEMPT);
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const inMs = Math.max(0, due - Date.now());
      this.emit("state", { kind: "reconnecting", code, reason: why, inMs });
      if (inMs > 0) this.timers.countdown = setTimeout(tick, Math.min(1000, inMs));
    };
    tick();
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => {
      clearTimeout(this.timers.countdown);
      this.open();
    }, delay);
  }
}

/** The close reason as a person reads it: the server's text, or what the code means. */
export function describeClose(code, reason) {
  if (reason) return `${reason} (${code})`;
  const known = {
    1000: "closed",
    1001: "server going away",
    1006: "connection lost",
    1011: "server error",
    1013: "server busy",
    4000: "heartbeat timeout",
    4001: "too slow",
    4002: "too many messages",
  };
  return `${known[code] || "closed"} (${code})`;
}

/** What the page shows for a state: "connected", "reconnecting in 3s (server going away
 *  (1001))", "closed: ...". */
export function stateText(state) {
  switch (state.kind) {
    case "connected":
      return "connected";
    case "connecting":
      return "connecting…";
    case "reconnecting":
      return state.inMs > 0
        ? `reconnecting in ${Math.ceil(state.inMs / 1000)}s${state.reason ? ` · ${state.reason}` : ""}`
        : `reconnecting…${state.reason ? ` · ${state.reason}` : ""}`;
    case "closed":
      return `closed · ${state.reason || ""}`;
    default:
      return state.kind;
  }
}

/** "N messages may be missing", as the terminal client words it. */
export function missingText(count) {
  if (count === null) return "⚠ some messages may be missing (the room's history was reset)";
  return count === 1 ? "⚠ 1 message may be missing" : `⚠ ${count} messages may be missing`;
}
