// One room over Server-Sent Events (/sse/<room>/), for pages that only listen: the fallback
// when a WebSocket cannot open (proxies that break them), or the only transport with
// `?transport=sse`. The same callbacks as RoomConnection (roomcast.js): state, joined,
// message, presence, missing. No DOM in here.
//
// EventSource reconnects by itself and sends the last event's id as Last-Event-ID, so the
// server replays exactly what was missed (or sends `gap`). It gives up only when a reconnect is
// answered with an HTTP error (a server draining or full answers 503); then this class opens a
// new one with jittered backoff, resuming with `?since=` from the last id it saw.

import { backoffDelay } from "/static/roomcast.js";

export class RoomFollower {
  constructor(room, { on = {} } = {}) {
    this.room = room;
    this.on = on;
    this.lastId = "";
    this.position = null; // {epoch, seq} of the last message shown
    this.source = null;
    this.attempt = 0;
    this.retry = 0;
    this.fresh = true;
  }

  emit(name, value) {
    const callback = this.on[name];
    if (callback) callback(value);
  }

  start() {
    this.open();
  }

  stop() {
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
  }

  url() {
    const base = `/sse/${encodeURIComponent(this.room)}/`;
    return this.lastId ? `${base}?since=${encodeURIComponent(this.lastId)}` : base;
  }

  open() {
    this.emit("state", { kind: this.fresh ? "connecting" : "reconnecting", inMs: 0, transport: "sse" });
    const source = new EventSource(this.url());
    this.source = source;
    const on = (name, handle) =>
      source.addEventListener(name, (event) => {
        if (event.lastEventId) this.lastId = event.lastEventId;
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        handle(data, event.lastEventId);
      });
    on("joined", (frame) => {
      this.attempt = 0;
      this.emit("joined", { members: frame.members, fresh: this.fresh });
      this.fresh = false;
      this.emit("state", { kind: "connected", transport: "sse" });
    });
    on("message", (frame, id) => {
      // The id is room:epoch:seq; a message is shown once per epoch and seq.
      const epoch = id.split(":")[1] || "";
      if (this.position && this.position.epoch === epoch && frame.seq <= this.position.seq) return;
      this.position = { epoch, seq: frame.seq };
      this.emit("message", frame);
    });
    on("gap", (gap) => {
      const since = gap.since;
      const known = since && since.epoch === gap.epoch && gap.resumes_at;
      this.emit("missing", { count: known ? Math.max(0, gap.resumes_at - since.seq - 1) : null });
    });
    on("join", (frame) => this.emit("presence", { kind: "join", user: frame.user }));
    on("leave", (frame) => this.emit("presence", { kind: "leave", user: frame.user, reason: frame.reason }));
    for (const name of ["shutdown", "evicted"]) {
      on(name, (ended) => this.emit("state", { kind: "reconnecting", reason: ended.message, inMs: 0, transport: "sse" }));
    }
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused with an HTTP error: EventSource will not retry; we do, with backoff.
        const delay = backoffDelay(this.attempt);
        this.attempt += 1;
        this.emit("state", { kind: "reconnecting", reason: "stream refused", inMs: delay, transport: "sse" });
        clearTimeout(this.retry);
        this.retry = setTimeout(() => this.open(), delay);
      } else {
        this.emit("state", { kind: "reconnecting", reason: "connection lost", inMs: 0, transport: "sse" });
      }
    };
  }
}
