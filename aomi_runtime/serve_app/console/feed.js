// A session's event stream, GET /api/updates, read with fetch(): the session id travels in the X-Session-Id
// header, which EventSource cannot send. Resumes with Last-Event-ID after every close or error, so that no event
// is lost or shown twice, across a dropped connection, a stream that spent its budget, or a restarted runtime.

import { sleep, url } from "./api.js";

const RECONNECT_MS = 300; // after a clean close (the stream's budget spent, a replica stopping)
const MAX_BACKOFF_MS = 5000; // after errors, doubling up to this

// Frames as the runtime sends them: `id: <seq>` and `data: <compact JSON>` lines, a blank line after each;
// comments (`: keep-alive`) ignored.
export function parseFrame(text) {
  let id = null;
  const data = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { id, data: data.join("\n") } : null;
}

// A refusal retrying cannot change (the stream answered 4xx, other than 429's "too many streams now").
class Refused extends Error {}

export class EventFeed {
  // onEvent(seq, event) is called once per event, in order; onStatus(text) says whether the stream is live.
  constructor(sessionId, { onEvent, onStatus }) {
    this.sessionId = sessionId;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.after = 0; // the last seq delivered: 0 replays every stored event first
    this.controller = new AbortController();
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.controller.abort();
  }

  async run() {
    let backoff = RECONNECT_MS;
    while (!this.controller.signal.aborted) {
      try {
        await this.readOnce();
        backoff = RECONNECT_MS;
        this.onStatus("reconnecting");
      } catch (error) {
        if (this.controller.signal.aborted) return;
        if (error instanceof Refused) {
          this.onStatus(`stopped: the stream refused it (${error.message}); not retried`);
          return;
        }
        this.onStatus(`reconnecting after an error (${error.message})`);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
      await sleep(backoff, this.controller.signal);
    }
  }

  async readOnce() {
    const response = await fetch(url("api/updates"), {
      headers: {
        Accept: "text/event-stream",
        "X-Session-Id": this.sessionId,
        "Last-Event-ID": String(this.after),
      },
      cache: "no-store",
      signal: this.controller.signal,
    });
    if (!response.ok) {
      response.body?.cancel().catch(() => {}); // the connection is released, not left to the collector
      const failed = response.status >= 400 && response.status < 500 && response.status !== 429 ? Refused : Error;
      throw new failed(`status ${response.status}`);
    }
    this.onStatus("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    // A gap in the seqs is accepted only as this connection's first event (the stored log no longer holds what
    // is missing); later, it means an event went missing on the way: reconnect from the last one delivered.
    let first = true;
    try {
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!frame) continue;
          if (!this.deliver(frame, first)) {
            this.onStatus(`a gap after event #${this.after}: reconnecting`);
            return;
          }
          first = false;
        }
      }
    } finally {
      // Whatever ends the read (the stream's end, a gap, an exception in onEvent or in JSON.parse): the connection
      // is closed, never left open and unread.
      reader.cancel().catch(() => {});
    }
  }

  // False when `frame` skips events (a gap) and a gap is not accepted.
  deliver(frame, acceptGap) {
    const seq = Number(frame.id);
    // An event at or before the last one delivered is one a resumed stream sent again: never shown twice.
    if (!Number.isInteger(seq) || seq <= this.after) return true;
    if (seq > this.after + 1 && !acceptGap) return false;
    // `after` moves only once the event is shown: one that failed is asked for again on the next connection.
    this.onEvent(seq, JSON.parse(frame.data));
    this.after = seq;
    return true;
  }
}
