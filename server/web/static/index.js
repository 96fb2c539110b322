// The index page: pick a room and a name, remember the name, list the rooms in use.

const NAME_KEY = "roomcast.user";
const form = document.getElementById("pick");
const roomInput = document.getElementById("room");
const userInput = document.getElementById("user");
const token = new URLSearchParams(location.search).get("token") || "";

userInput.value = localStorage.getItem(NAME_KEY) || "";

function chatUrl(room, user) {
  const query = new URLSearchParams();
  if (user) query.set("user", user);
  if (token) query.set("token", token);
  const text = query.toString();
  return `/chat/${encodeURIComponent(room)}/${text ? `?${text}` : ""}`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = roomInput.value.trim();
  const user = userInput.value.trim();
  if (!room) return;
  localStorage.setItem(NAME_KEY, user);
  location.assign(chatUrl(room, user));
});

async function listRooms() {
  const list = document.getElementById("rooms");
  try {
    const response = await fetch("/api/rooms");
    if (!response.ok) return;
    const { rooms } = await response.json();
    const busy = rooms.filter((room) => room.members.length > 0);
    if (busy.length === 0) return;
    list.replaceChildren(
      ...busy.map((room) => {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = chatUrl(room.room, userInput.value.trim());
        const name = document.createElement("span");
        name.textContent = room.room;
        const count = document.createElement("span");
        count.className = "muted";
        const people = room.members.length;
        count.textContent = people === 1 ? "1 member" : `${people} members`;
        link.append(name, count);
        item.append(link);
        return item;
      }),
    );
  } catch {
    // The list is a convenience; the form works without it.
  }
}

listRooms();
