// The conversation of a snapshot (GET /api/state, POST /api/chat, POST /api/interrupt), kept in place: each
// message keeps its element while the snapshot changes, so a streaming reply's text grows where it is.

import { el, following } from "./api.js";

// Tool results are JSON text when the tool returned anything but a string: shown pretty-printed.
export function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

// System events are externally tagged: {"SystemError": text}, {"SystemNotice": text}, {"InlineCall": {type, ...}}.
function systemEventText(event) {
  const [kind, value] = Object.entries(event)[0] || ["event", event];
  if (typeof value === "string") return { kind, text: value };
  if (kind === "InlineCall" && value && value.type) {
    const payload = typeof value.payload === "string" ? value.payload : JSON.stringify(value.payload);
    return { kind, text: `${value.type}${value.kind ? ` (${value.kind})` : ""}: ${payload}` };
  }
  return { kind, text: JSON.stringify(value) };
}

// The runtime's own event types, as agent/system_messages.py's RUNTIME_EVENTS (a test checks they match): a client
// cannot post these, and the runtime emits no other (a turn's `emit` writes only tool_update and tool_complete), so
// any other type on the stream is a JSON system message posted to the session; system_notice is a posted text.
export const RUNTIME_EVENTS = new Set([
  "processing_started", "processing_done", "message", "title_changed", "tool_update", "tool_complete",
  "system_notice",
]);

// Types the runtime hands to a client only in a snapshot's `system_events`, never as an event of their own.
const WALLET_REQUESTS = new Set(["wallet_tx_request", "wallet_eip712_request"]);

export class Conversation {
  constructor(list) {
    this.list = list;
    this.elements = new Map(); // key -> element
    this.systemEvents = []; // each after the newest message finished before it: {after, event, key}
    this.newest = null; // the largest message id a `message` event carried
    this.streamTypes = new Set(); // posted JSON types seen on the stream
    this.snapshot = null;
  }

  clear() {
    this.list.replaceChildren();
    this.elements.clear();
    this.systemEvents = [];
    this.newest = null;
    this.streamTypes.clear();
    this.snapshot = null;
  }

  place(event) {
    const after = this.newest === null ? null : `i${this.newest}`;
    this.systemEvents.push({ after, event, key: `s${this.systemEvents.length}` });
  }

  // A system message posted to the session, or a turn's error or interrupt, as the stream tells it: placed after
  // the newest message announced before it, by its id (a message announced again, a wallet outcome's result, does
  // not move it on). The page reads snapshots with `peek`, which hands out no system event: a client's stay its own.
  addEvent(event) {
    if (event.type === "message" && Number.isInteger(event.message?.id)) {
      this.newest = Math.max(this.newest ?? event.message.id, event.message.id);
    }
    let system = null;
    if (event.type === "system_notice") system = { SystemNotice: event.message };
    else if (event.type === "processing_done" && event.error) system = { SystemError: event.error };
    else if (event.type === "processing_done" && event.interrupted) system = { Interrupted: "Interrupted by user" };
    else if (!RUNTIME_EVENTS.has(event.type)) {
      const { session_id: _, ...fields } = event;
      this.streamTypes.add(event.type);
      system = { InlineCall: fields };
    }
    if (!system) return;
    this.place(system);
    if (this.snapshot) this.show(this.snapshot);
  }

  // The `system_events` of an answer to the page's own chat or interrupt (the page is the client then: they are
  // handed to it, and to no one else). Shown unless the stream shows them already: notices and posted JSON from
  // their events, a turn's error and interrupt from its processing_done. What is left is a wallet request (and
  // any kind the stream does not carry), shown here or never.
  addHandedOut(events) {
    for (const event of events || []) {
      const [kind, value] = Object.entries(event)[0] || [];
      if (kind === "SystemNotice" || kind === "SystemError") continue;
      if (kind === "InlineCall" && value?.kind === "Interruption") continue;
      if (kind === "InlineCall" && !WALLET_REQUESTS.has(value?.type) && this.streamTypes.has(value?.type)) continue;
      this.place(event);
    }
  }

  // A message's key: its id (its place in the list), which a message keeps once it is not queued (queued ones wait
  // at the end), so a streaming reply keeps its element as its text grows and when it ends; a queued one, its request.
  static keyOf(message, index) {
    return message.queued ? `q${message.request_id ?? index}` : `i${message.id ?? index}`;
  }

  static shapeOf(message) {
    return `${message.sender}${message.tool_result ? ":" + message.tool_result[0] : ""}`;
  }

  show(snapshot) {
    this.snapshot = snapshot;
    following(this.list, () => this.render(snapshot));
  }

  render(snapshot) {
    // Not the snapshot's `system_events`: the page's polls hand none out (`peek`); those its own chat and interrupt
    // answers carry come through addHandedOut.
    const messages = snapshot.messages || [];
    const keys = messages.map((m, i) => Conversation.keyOf(m, i));
    const order = [];
    const placed = new Set();
    const place = (anchor) => {
      for (const s of this.systemEvents) {
        if (s.after !== anchor) continue;
        order.push([s.key, () => this.systemItem(s.event)]);
        placed.add(s);
      }
    };
    place(null);
    messages.forEach((message, i) => {
      order.push([keys[i], () => this.messageItem(message), message]);
      place(keys[i]);
    });
    // After a message this snapshot does not hold (yet): at the end, never nowhere.
    for (const s of this.systemEvents) if (!placed.has(s)) order.push([s.key, () => this.systemItem(s.event)]);
    const wanted = new Set(order.map(([key]) => key));
    for (const [key, node] of this.elements) {
      if (!wanted.has(key)) {
        node.remove();
        this.elements.delete(key);
      }
    }
    order.forEach(([key, make, message], i) => {
      let node = this.elements.get(key);
      if (node && message && node.dataset.shape !== Conversation.shapeOf(message)) {
        node.remove(); // the message at this place changed its kind (a queued one took the place): made anew
        node = null;
      }
      if (!node) {
        node = make();
        this.elements.set(key, node);
      } else if (message) {
        this.update(node, message);
      }
      if (this.list.children[i] !== node) this.list.insertBefore(node, this.list.children[i] || null);
    });
  }

  messageItem(message) {
    const node = el("li", { class: `message ${message.sender}`, "data-shape": Conversation.shapeOf(message) });
    node.append(el("span", { class: "sender", text: message.sender }));
    if (message.tool_result) {
      const [topic, text] = message.tool_result;
      node.classList.add("tool-result");
      node.append(
        el("article", { class: "card", "aria-label": `Tool result: ${topic}` },
          el("h3", { class: "topic", text: topic }),
          el("pre", { class: "json", text: pretty(text) })),
      );
    }
    node.append(el("div", { class: "text" }));
    node.append(el("span", { class: "badges" }));
    this.update(node, message);
    return node;
  }

  update(node, message) {
    const text = node.querySelector(":scope > .text");
    if (text.textContent !== message.content) text.textContent = message.content;
    text.hidden = !message.content;
    node.classList.toggle("streaming", Boolean(message.is_streaming));
    // A turn's agent message may end empty (the model went straight to a tool): nothing to show.
    node.classList.toggle("empty", !message.content && !message.tool_result && !message.is_streaming);
    node.classList.toggle("queued", Boolean(message.queued));
    const badges = [];
    if (message.queued) badges.push("queued");
    if (message.unanswered) badges.push("unanswered");
    if (message.is_streaming) badges.push("streaming");
    const line = badges.join(" · ");
    const holder = node.querySelector(":scope > .badges");
    if (holder.textContent !== line) holder.textContent = line;
  }

  systemItem(event) {
    const { kind, text } = systemEventText(event);
    return el("li", { class: `system-event ${kind}` }, el("span", { class: "sender", text: kind }), el("div", { class: "text", text }));
  }
}
