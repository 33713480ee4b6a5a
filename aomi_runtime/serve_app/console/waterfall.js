// Each turn's timings as a waterfall, from its processing_done event's `timings` (recorded by the runtime and
// stored with the event): {ms, spans: [{kind: "model"|"tool"|"commit", name, start_ms, ms, ...}], dropped?}.

import { el } from "./api.js";

function ms(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

function spanLabel(span) {
  if (span.kind === "tool") return `tool ${span.topic && span.topic !== span.name ? `${span.name} (${span.topic})` : span.name}`;
  return span.name && span.name !== span.kind ? `${span.kind} ${span.name}` : span.kind;
}

export class Waterfalls {
  constructor(holder) {
    this.holder = holder;
    this.turns = 0;
  }

  clear() {
    this.holder.replaceChildren();
    this.turns = 0;
  }

  add(seq, event) {
    if (event.type !== "processing_done" || event.unanswered) return;
    this.turns += 1;
    const timings = event.timings;
    const outcome = event.error ? "failed" : event.interrupted ? "interrupted" : "done";
    const title = `Turn ${this.turns} (event #${seq}, ${outcome})`;
    const figure = el("figure", { class: "waterfall", "data-seq": seq });
    if (!timings || !Array.isArray(timings.spans)) {
      figure.append(el("figcaption", { text: `${title}: no timings recorded` }));
      this.holder.prepend(figure);
      return;
    }
    // The turn's own length is the scale (a turn under 1 ms too); only a turn recorded as 0 ms needs another.
    const total = timings.ms > 0 ? timings.ms : 1;
    figure.append(el("figcaption", { text: `${title}: ${ms(timings.ms)}` }));
    const rows = el("ol", { class: "spans", "aria-label": `${title} spans` });
    for (const span of timings.spans) {
      const left = (100 * Math.max(0, span.start_ms)) / total;
      const width = Math.max(0.5, (100 * span.ms) / total);
      const bar = el("span", { class: `bar ${span.kind}` });
      bar.style.left = `${Math.min(left, 99.5)}%`;
      bar.style.width = `${Math.min(width, 100 - Math.min(left, 99.5))}%`;
      const track = el("span", { class: "track" }, bar);
      if (span.kind === "model" && typeof span.first_token_ms === "number") {
        const mark = el("span", { class: "first-token", title: `first token after ${ms(span.first_token_ms)}` });
        mark.style.left = `${Math.min(100, (100 * (span.start_ms + span.first_token_ms)) / total)}%`;
        track.append(mark);
      }
      let extra = span.kind === "tool" && span.status === "error" ? " error" : "";
      if (span.kind === "model" && typeof span.input_tokens === "number") {
        extra += ` · ${span.input_tokens} → ${span.output_tokens ?? "?"} tokens`; // where the provider reports usage
      }
      rows.append(el("li", { class: `span ${span.kind}`, "data-kind": span.kind },
        el("span", { class: "name", text: spanLabel(span) }),
        track,
        el("span", { class: "ms", text: `${ms(span.ms)}${extra}${span.background ? " (background)" : ""}` })));
    }
    figure.append(rows);
    if (timings.dropped) figure.append(el("p", { class: "note", text: `${timings.dropped} more spans not recorded` }));
    this.holder.prepend(figure); // newest turn first
  }
}
