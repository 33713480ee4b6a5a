// The console: the caller (App, its key, the public key sessions are listed by), the session list, and one open
// session (conversation, composer, events, tool progress, timings), over the runtime's public routes.
//
// The App key lives in this page's memory only: never in storage, never in a URL. The public key is kept in
// localStorage (it is not a secret: anyone may list by it) and the open session's id in sessionStorage (this tab
// only), so that a reload shows the same session again.

import { ApiError, clock, el, request, uuid4 } from "./api.js";
import { Conversation } from "./conversation.js";
import { EventFeed } from "./feed.js";
import { Glance } from "./glance.js";
import { Timeline, ToolProgress } from "./timeline.js";
import { Waterfalls } from "./waterfall.js";

const $ = (id) => document.getElementById(id);
const PUBLIC_KEY = "aomi-console-public-key";
const OPEN_SESSION = "aomi-console-session";
// While a turn runs, the reply's text grows between polls (304s while it does not): Aomi's client's pace. At rest
// the page polls only when an event wakes it (every change of a session is an event), and never while hidden.
const BUSY_POLL_MS = 500;
const GLANCE_MS = 3000;
const SESSIONS_LISTED = 200;

const state = {
  key: "",
  publicKey: localStorage.getItem(PUBLIC_KEY) || `console-${uuid4().slice(0, 8)}`,
  app: "default",
  // Bumped whenever the caller changes: an answer asked for under another key is dropped, never shown.
  generation: 0,
  sessions: [],
  open: null,
  sessionApps: new Map(), // sessions made here -> their App; a listed session's requests name none (its own)
  lists: 0, // list loads asked for: only the latest one's answer is applied
  listing: null, // the list load in flight (loads coalesce: one in flight, at most one more after it)
  listAgain: false,
};
localStorage.setItem(PUBLIC_KEY, state.publicKey);

const conversation = new Conversation($("conversation"));
const timeline = new Timeline($("timeline"));
const tools = new ToolProgress($("tools"));
const waterfalls = new Waterfalls($("waterfalls"));
const glance = new Glance($("glance"));

function say(text, isError = false) {
  const line = $("status");
  line.textContent = text;
  line.classList.toggle("error", isError);
}

function fail(error) {
  say(error instanceof ApiError ? error.message : `${error}`, true);
}

const keyed = () => ({ key: state.key });

// --- the caller -------------------------------------------------------------------------------------------

async function loadApps() {
  const generation = state.generation;
  const apps = await request("GET", "api/control/apps", keyed());
  if (generation !== state.generation) return;
  const select = $("app");
  select.replaceChildren(...apps.map((name) => el("option", { value: name, text: name })));
  if (!apps.includes(state.app)) state.app = apps.includes("default") ? "default" : apps[0];
  select.value = state.app;
}

// The models of the open session's App: a session made here names its App; a listed one is asked for with none,
// which gives the key's App (else default's), the App a listed session of this caller belongs to.
async function loadModels() {
  const select = $("model");
  const generation = state.generation;
  const open = state.open;
  const app = open ? state.sessionApps.get(open.id) : undefined;
  const current = () => generation === state.generation && open === state.open; // not another caller or session
  try {
    const models = await request("GET", "api/control/models", { ...keyed(), params: { app } });
    if (!current()) return;
    select.replaceChildren(
      el("option", { value: "", text: "(as the session has it)" }),
      ...models.map((label) => el("option", { value: label, text: label })),
    );
  } catch (error) {
    if (!current()) return;
    select.replaceChildren(el("option", { value: "", text: "(needs the App's key)" }));
    fail(error);
  }
}

async function applyCaller() {
  state.key = $("key").value.trim();
  state.publicKey = $("public-key").value.trim() || state.publicKey;
  localStorage.setItem(PUBLIC_KEY, state.publicKey);
  const generation = (state.generation += 1);
  // Nothing shown under the previous key stays on screen while the new list loads: the open session comes back
  // only if it is listed for this caller.
  const reopen = state.open?.id;
  closeSession();
  state.sessions = [];
  renderSessions();
  try {
    await loadApps();
    await loadSessions();
    // Not over a session opened (or a caller applied) while the list loaded.
    const current = generation === state.generation && !state.open;
    if (current && reopen && state.sessions.some((s) => s.session_id === reopen)) openSession(reopen);
    const apps = [...$("app").options].map((o) => o.value).join(", ");
    say(`${state.key ? "Key applied" : "No key"}: the Apps open to this caller are ${apps}.`);
  } catch (error) {
    fail(error);
  }
}

// --- the session list -------------------------------------------------------------------------------------

// Loads coalesce: while one is in flight, any number of asks make one more after it (a burst of events, a reopened
// session's replay, costs two requests, not one each).
function loadSessions() {
  if (state.listing) {
    state.listAgain = true;
    return state.listing;
  }
  state.listing = (async () => {
    try {
      do {
        state.listAgain = false;
        await loadSessionsOnce();
      } while (state.listAgain);
    } finally {
      state.listing = null;
    }
  })();
  return state.listing;
}

async function loadSessionsOnce() {
  const generation = state.generation;
  const number = (state.lists += 1);
  const asked = state.open; // a session opened while the list loads (one just made) may not be in it yet
  const sessions = await request("GET", "api/sessions", {
    ...keyed(),
    params: { public_key: state.publicKey, limit: SESSIONS_LISTED },
  });
  if (generation !== state.generation || number !== state.lists) return; // another caller, or a newer list asked
  state.sessions = sessions;
  renderSessions();
  // The open session goes when it is no longer listed for this caller (another key, deleted).
  const open = state.open;
  if (open && open === asked && !sessions.some((s) => s.session_id === open.id)) closeSession();
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function renderSessions() {
  const list = $("sessions");
  list.replaceChildren(...state.sessions.map(sessionItem));
  $("sessions-empty").hidden = state.sessions.length > 0;
}

function sessionItem(info) {
  const isOpen = state.open?.id === info.session_id;
  const item = el("li", {
    class: `session${info.is_archived ? " archived" : ""}${isOpen ? " open" : ""}`,
    "data-session": info.session_id,
  });
  const open = el("button", {
    type: "button",
    class: "title",
    "aria-current": isOpen ? "true" : undefined,
    text: info.title,
    onclick: () => openSession(info.session_id),
  });
  const meta = el("span", { class: "meta" },
    el("time", { datetime: info.updated_at, title: `last activity ${info.updated_at}`, text: ago(info.updated_at) }),
    info.is_archived ? el("span", { class: "badge", text: "archived" }) : null);
  const rename = el("button", { type: "button", text: "Rename", "aria-label": `Rename ${info.title}`,
    onclick: () => startRename(item, info) });
  const archive = el("button", { type: "button", text: info.is_archived ? "Unarchive" : "Archive",
    "aria-label": `${info.is_archived ? "Unarchive" : "Archive"} ${info.title}`,
    onclick: () => act(() => request("POST", `api/sessions/${encodeURIComponent(info.session_id)}/${info.is_archived ? "unarchive" : "archive"}`)) });
  const remove = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${info.title}`,
    onclick: () => confirmDelete(remove, info) });
  item.append(open, meta, el("span", { class: "actions" }, rename, archive, remove));
  return item;
}

async function act(action) {
  try {
    await action();
    await loadSessions();
  } catch (error) {
    fail(error);
  }
}

function startRename(item, info) {
  const input = el("input", { value: info.title, "aria-label": `New title for ${info.title}`, maxlength: 200 });
  const title = item.querySelector(".title");
  title.replaceWith(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const text = input.value.trim();
    if (save && text && text !== info.title) {
      await act(() => request("PATCH", `api/sessions/${encodeURIComponent(info.session_id)}`, { body: { title: text } }));
      if (state.open?.id === info.session_id) $("session-title").textContent = text;
    } else {
      input.replaceWith(title);
    }
    item.querySelector(".title")?.focus();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

// Two presses: the first asks, the second deletes; the question goes away after a few seconds.
function confirmDelete(button, info) {
  if (button.dataset.armed) {
    act(async () => {
      await request("DELETE", `api/sessions/${encodeURIComponent(info.session_id)}`);
      if (state.open?.id === info.session_id) closeSession();
    });
    return;
  }
  button.dataset.armed = "yes";
  button.textContent = "Confirm delete";
  button.setAttribute("aria-label", `Confirm delete of ${info.title}`);
  setTimeout(() => {
    delete button.dataset.armed;
    button.textContent = "Delete";
    button.setAttribute("aria-label", `Delete ${info.title}`);
  }, 4000);
}

async function newSession() {
  const id = uuid4();
  const generation = state.generation;
  const app = state.app;
  try {
    const made = await request("POST", "api/sessions", {
      ...keyed(),
      session: id,
      params: { app },
      body: { public_key: state.publicKey },
    });
    const current = generation === state.generation; // the caller changed meanwhile: the list says what it sees
    if (current) state.sessionApps.set(id, app);
    await loadSessions();
    if (!current || generation !== state.generation) return;
    openSession(made.session_id);
    $("message").focus();
  } catch (error) {
    fail(error);
  }
}

// --- one session ------------------------------------------------------------------------------------------

function closeSession() {
  const open = state.open;
  if (!open) return;
  open.feed.stop();
  open.closed = true;
  open.wake();
  state.open = null;
  sessionStorage.removeItem(OPEN_SESSION);
  for (const view of [conversation, timeline, tools, waterfalls]) view.clear();
  $("session-title").textContent = "No session open";
  $("stream-status").textContent = "";
  for (const id of ["message", "send", "interrupt", "model"]) $(id).disabled = true;
  $("model").replaceChildren(); // the models of the next session's App, loaded when it opens
  renderSessions();
}

function openSession(id) {
  closeSession();
  const open = {
    id,
    closed: false,
    changed: false, // an event came since the last poll began: poll again at once
    wakeUp: null,
    shown: -1, // the last_event_id of the snapshot shown: an older one answered late is dropped
    live: null, // the first snapshot's last_event_id: events above it happen now, those at or below are replayed
    listChanged: 0, // the seq of the newest list-changing event seen before the first snapshot
    wake() {
      this.changed = true;
      this.wakeUp?.();
    },
    // Until woken, or `ms` (null: no timer). While the page is hidden, a change waits for it to show again.
    wait(ms) {
      if (this.changed && !document.hidden) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = ms === null ? null : setTimeout(resolve, ms);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
  state.open = open;
  sessionStorage.setItem(OPEN_SESSION, id);
  const info = state.sessions.find((s) => s.session_id === id);
  $("session-title").textContent = info ? info.title : "Session";
  for (const name of ["message", "send", "model"]) $(name).disabled = false;
  loadModels();
  // Every stored event first (Last-Event-ID: 0), numbered by the stream itself, then live ones.
  open.feed = new EventFeed(id, {
    onEvent: (seq, event) => {
      if (open.closed) return;
      timeline.add(seq, event);
      tools.add(event);
      waterfalls.add(seq, event);
      conversation.addEvent(event);
      if (event.type === "title_changed") $("session-title").textContent = event.new_title;
      // The list changes with a live turn's end or title, not with each of the replay's (reopening a session of
      // N turns would load the list N times).
      if (event.type === "processing_done" || event.type === "title_changed") {
        if (open.live === null) open.listChanged = seq;
        else if (seq > open.live) loadSessions().catch(fail);
      }
      open.wake();
    },
    onStatus: (text) => {
      if (!open.closed) $("stream-status").textContent = `events: ${text}`;
    },
  }).start();
  renderSessions();
  poll(open);
}

async function poll(open) {
  while (!open.closed) {
    if (document.hidden) {
      await open.wait(null); // woken when the page shows again
      continue;
    }
    let busy = false;
    open.changed = false;
    try {
      // peek: an onlooker's read hands out no system event (they stay for the session's own client; the stream
      // shows them here).
      const snapshot = await request("GET", "api/state?peek=true", { session: open.id });
      if (open.closed) return;
      if (open.live === null) {
        open.live = snapshot.last_event_id ?? 0;
        if (open.listChanged > open.live) loadSessions().catch(fail); // one came live before this snapshot
      }
      showSnapshot(open, snapshot);
      busy = snapshot.is_processing;
    } catch (error) {
      fail(error);
    }
    await open.wait(busy ? BUSY_POLL_MS : null);
  }
}

// A snapshot of `open`, unless another session is open now or a later snapshot is shown already (answers to the
// page's reads, sends and interrupts may cross).
function showSnapshot(open, snapshot) {
  if (state.open !== open) return;
  const version = snapshot.last_event_id ?? -1;
  if (version < open.shown) return;
  open.shown = version;
  conversation.show(snapshot);
  $("interrupt").disabled = !snapshot.is_processing;
  $("conversation").setAttribute("aria-busy", snapshot.is_processing ? "true" : "false");
  if (snapshot.title) $("session-title").textContent = snapshot.title;
}

// An answer to the page's own chat or interrupt: its system events were handed to the page, shown even when its
// snapshot is older than the one shown.
function showAnswer(open, snapshot) {
  if (state.open !== open) return;
  conversation.addHandedOut(snapshot.system_events);
  showSnapshot(open, snapshot);
  if (conversation.snapshot !== snapshot) conversation.show(conversation.snapshot);
}

async function send() {
  const open = state.open;
  const text = $("message").value;
  if (!open || !text.trim()) return;
  $("message").value = "";
  try {
    const snapshot = await request("POST", "api/chat", {
      ...keyed(),
      session: open.id,
      params: { app: state.sessionApps.get(open.id), public_key: state.publicKey, request_id: uuid4() },
      body: { message: text },
    });
    showAnswer(open, snapshot);
    open.wake();
  } catch (error) {
    // Back where it was typed: not into another session opened since, nor over a text typed since.
    if (state.open === open && !$("message").value) $("message").value = text;
    fail(error);
  }
}

async function interrupt() {
  const open = state.open;
  if (!open) return;
  try {
    const snapshot = await request("POST", "api/interrupt", { session: open.id });
    showAnswer(open, snapshot);
    say(`Interrupted at ${clock(new Date())}.`);
  } catch (error) {
    fail(error);
  }
}

async function chooseModel() {
  const open = state.open;
  const rig = $("model").value;
  if (!open || !rig) return;
  try {
    const chosen = await request("POST", "api/control/model", {
      ...keyed(),
      session: open.id,
      params: { rig, app: state.sessionApps.get(open.id) },
    });
    say(`Later turns use ${chosen.rig}.`);
  } catch (error) {
    fail(error);
  }
}

// --- the side panel's tabs (arrow keys move between them, as a tablist's do) -----------------------------

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    if (!selected && other.id === "tab-runtime") glance.forget(); // turns/s starts again when it shows again
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (tab.id === "tab-runtime") glance.refresh().catch(fail);
}

function wireTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const [i, tab] of tabs.entries()) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      selectTab(next);
      next.focus();
    });
  }
}

// --- start ------------------------------------------------------------------------------------------------

function wire() {
  $("public-key").value = state.publicKey;
  // Not a form: the key field is in none, so no browser offers to save the key as a password or submits it.
  $("apply").addEventListener("click", applyCaller);
  for (const id of ["key", "public-key"]) {
    $(id).addEventListener("keydown", (e) => {
      if (e.key === "Enter") applyCaller();
    });
  }
  $("app").addEventListener("change", () => {
    state.app = $("app").value; // the App of sessions made next
  });
  $("new-session").addEventListener("click", newSession);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $("interrupt").addEventListener("click", interrupt);
  $("model").addEventListener("change", chooseModel);
  wireTabs();
  document.addEventListener("visibilitychange", () => {
    state.open?.wake(); // a poll paused while hidden goes on
    if (document.hidden) glance.forget();
  });
  setInterval(() => {
    if (document.visibilityState === "visible" && !$("panel-runtime").hidden) glance.refresh().catch(fail);
  }, GLANCE_MS);
}

async function start() {
  wire();
  try {
    await loadApps();
    await loadSessions();
    const reopen = sessionStorage.getItem(OPEN_SESSION);
    if (!state.open && reopen && state.sessions.some((s) => s.session_id === reopen)) openSession(reopen);
    document.body.dataset.ready = "yes";
  } catch (error) {
    fail(error);
  }
}

start();
