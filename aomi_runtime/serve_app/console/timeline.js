// The session's events as a timeline (seq, type, time received, payload expandable), and a progress bar per
// running tool call that reports progress (tool_update events, then its tool_complete). A finished call's bar
// stays until the next turn starts, so a reload (which replays the whole log) shows the last turn's, not every
// call of the session's history.

import { clock, el, following } from "./api.js";

const MAX_SHOWN = 2000; // the timeline keeps the newest; the stored log is whole (GET /api/events)

export class Timeline {
  constructor(list) {
    this.list = list;
  }

  clear() {
    this.list.replaceChildren();
  }

  add(seq, event) {
    const { type, session_id: _session, ...payload } = event;
    const item = el("li", { class: "event", "data-seq": seq, "data-type": type },
      el("details", {},
        el("summary", {},
          el("span", { class: "seq", text: `#${seq}` }),
          el("span", { class: "type", text: type }),
          el("time", { text: clock(new Date()), title: "received" })),
        el("pre", { class: "json", text: JSON.stringify(payload, null, 2) })));
    following(this.list.parentElement, () => {
      this.list.append(item);
      while (this.list.children.length > MAX_SHOWN) this.list.firstElementChild.remove();
    });
  }
}

// How far a progress payload says the call is: {step, of}, {done, total}, {progress: 0..1}; null when it does not.
export function fraction(result) {
  if (!result || typeof result !== "object") return null;
  const pairs = [["step", "of"], ["done", "total"], ["current", "total"]];
  for (const [part, whole] of pairs) {
    if (typeof result[part] === "number" && typeof result[whole] === "number" && result[whole] > 0) {
      return Math.min(1, result[part] / result[whole]);
    }
  }
  if (typeof result.progress === "number") return Math.max(0, Math.min(1, result.progress));
  return null;
}

export class ToolProgress {
  constructor(list) {
    this.list = list;
    this.bars = new Map(); // tool call id -> {item, bar, label}
  }

  clear() {
    this.list.replaceChildren();
    this.bars.clear();
  }

  add(event) {
    if (event.type === "processing_started") {
      for (const [id, entry] of this.bars) {
        if (!entry.done) continue;
        entry.item.remove();
        this.bars.delete(id);
      }
    }
    if (event.type !== "tool_update" && event.type !== "tool_complete") return;
    let entry = this.bars.get(event.id);
    if (!entry) {
      const bar = el("progress", { max: 1, "aria-label": `${event.tool_name} progress` });
      const label = el("span", { class: "label" });
      const item = el("li", { class: "tool", "data-call": event.id },
        el("span", { class: "name", text: event.tool_name }), bar, label);
      entry = { item, bar, label };
      this.bars.set(event.id, entry);
      this.list.append(item);
    }
    const done = event.type === "tool_complete";
    entry.done = done;
    const part = done ? 1 : fraction(event.result);
    if (part === null) entry.bar.removeAttribute("value"); // indeterminate: the tool says only that it runs
    else entry.bar.value = part;
    entry.item.dataset.status = event.status;
    entry.label.textContent = done ? event.status : event.message || "running";
  }
}
