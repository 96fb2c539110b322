// The room page: /chat/<room>/?user=NAME[&token=T]. Peer text only ever goes through
// textContent, so a peer's "<script>" is shown, never run.

import { RoomConnection, clock, missingText, pageParams, roomFromPath, stateText } from "/static/roomcast.js";

/** Lines kept on the page; older ones are dropped so a long-open tab stays light. */
const MAX_LINES = 1000;

const room = roomFromPath();
const { user, token } = pageParams();
const timeline = document.getElementById("timeline");
const stateBadge = document.getElementById("state");
const input = document.getElementById("message");
const sendButton = document.getElementById("send");
const members = new Set();
let me = user;

document.getElementById("room-name").textContent = `#${room}`;
document.title = `${room} · roomcast`;

function line(className, ...parts) {
  const follow = timeline.scrollTop + timeline.clientHeight >= timeline.scrollHeight - 8;
  const item = document.createElement("li");
  if (className) item.className = className;
  item.append(...parts);
  timeline.append(item);
  while (timeline.children.length > MAX_LINES) timeline.firstElementChild.remove();
  if (follow) timeline.scrollTop = timeline.scrollHeight;
  return item;
}

function span(className, text) {
  const element = document.createElement(className === "time" ? "time" : "span");
  if (className !== "time") element.className = className;
  element.textContent = text;
  return element;
}

function event(text) {
  line("event", span("time", clock(Date.now())), document.createTextNode(text));
}

function renderMembers() {
  const list = document.getElementById("members");
  const sorted = [...members].sort((a, b) => a.localeCompare(b));
  list.replaceChildren(...sorted.map((name) => {
    const item = document.createElement("li");
    item.textContent = name === me ? `${name} (you)` : name;
    return item;
  }));
  document.getElementById("member-count").textContent = `(${members.size})`;
}

function setConnected(connected) {
  input.disabled = !connected;
  sendButton.disabled = !connected;
}

const connection = new RoomConnection(room, {
  user,
  token,
  on: {
    state(state) {
      stateBadge.dataset.state = state.kind;
      stateBadge.textContent = stateText(state);
      stateBadge.title = stateBadge.textContent;
      setConnected(state.kind === "connected");
      if (state.user) {
        me = state.user;
        document.getElementById("me").textContent = `you are ${me}`;
      }
    },
    joined({ members: present }) {
      members.clear();
      for (const name of present) members.add(name);
      renderMembers();
    },
    message(frame) {
      const item = line(
        frame.user === me ? "mine" : "",
        span("time", clock(frame.ts)),
        span("user", frame.user),
        span("text", frame.message),
      );
      item.dataset.seq = frame.seq;
    },
    presence({ kind, user: name, reason }) {
      if (kind === "join") {
        members.add(name);
        event(`${name} joined`);
      } else {
        members.delete(name);
        event(reason && reason !== "left" ? `${name} left (${reason})` : `${name} left`);
      }
      renderMembers();
    },
    missing({ count }) {
      line("gap", document.createTextNode(missingText(count)));
    },
    refused(frame) {
      line("gap", document.createTextNode(`⚠ ${frame.message || frame.code}`));
    },
  },
});

document.getElementById("composer").addEventListener("submit", (submit) => {
  submit.preventDefault();
  const text = input.value;
  if (!text.trim()) return;
  if (connection.publish(text)) input.value = "";
  input.focus();
});

if (!room) {
  stateBadge.dataset.state = "closed";
  stateBadge.textContent = "no room in the address: open /chat/<room>/";
} else {
  connection.start();
}
