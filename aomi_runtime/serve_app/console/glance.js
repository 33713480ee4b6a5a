// The runtime at a glance, from its own GET /metrics (Prometheus text), refreshed every few seconds. Latency
// percentiles come from histogram buckets, so they are shown as the bucket that holds them (a range), never as
// a number the buckets cannot give.

import { el, request } from "./api.js";

const SAMPLE = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

// [{name, labels, value}] from Prometheus' text format (comments and blank lines skipped).
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = SAMPLE.exec(line);
    if (!match || line.startsWith("#")) continue;
    const labels = {};
    for (const [, name, value] of (match[2] || "").matchAll(LABEL)) {
      labels[name] = value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3].replace("Inf", "Infinity")) });
  }
  return samples;
}

// A histogram's cumulative buckets [[bound, count]] and count, summed over the samples `keep` selects.
export function histogram(samples, name, keep) {
  const buckets = new Map();
  let count = 0;
  for (const s of samples) {
    if (!keep(s.labels)) continue;
    if (s.name === `${name}_bucket`) {
      const bound = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      buckets.set(bound, (buckets.get(bound) || 0) + s.value);
    } else if (s.name === `${name}_count`) count += s.value;
  }
  return { buckets: [...buckets].sort((a, b) => a[0] - b[0]), count };
}

// The bucket holding quantile q: [lower, upper] bounds, or null with no observations.
export function quantileBounds({ buckets, count }, q) {
  if (!count) return null;
  const rank = q * count;
  let lower = 0;
  for (const [bound, cumulative] of buckets) {
    if (cumulative >= rank) return [lower, bound];
    lower = bound;
  }
  return [lower, Infinity];
}

// A bucket's bound as it is (0.0075 s is 7.5 ms, not "8 ms"); toPrecision drops binary noise (0.0075 * 1000).
const exact = (value) => Number(value.toPrecision(12));

function seconds(value) {
  return value >= 1 ? `${exact(value)} s` : `${exact(value * 1000)} ms`;
}

export function describeBounds(bounds) {
  if (!bounds) return "—";
  const [lower, upper] = bounds;
  if (upper === Infinity) return `> ${seconds(lower)}`;
  if (lower === 0) return `≤ ${seconds(upper)}`;
  // One unit for both bounds where they share it: "100–250 ms", "1–2.5 s".
  if (upper < 1) return `${exact(lower * 1000)}–${exact(upper * 1000)} ms`;
  if (lower >= 1) return `${exact(lower)}–${exact(upper)} s`;
  return `${seconds(lower)}–${seconds(upper)}`;
}

export class Glance {
  constructor(holder) {
    this.holder = holder;
    this.previous = null; // {at, turns: Map app -> count}: turns/s is the count's rise between scrapes
    this.refreshing = null; // one refresh at a time: two crossing would make a rate of their order, not of time
  }

  refresh() {
    this.refreshing ??= (async () => {
      try {
        const text = await request("GET", "metrics");
        this.show(parseMetrics(text), performance.now());
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  // While the panel is hidden nothing is scraped: the next rate starts from the next refresh, not from the last
  // one seen, minutes ago.
  forget() {
    this.previous = null;
  }

  show(samples, now) {
    const byApp = (name) => {
      const values = new Map();
      for (const s of samples) if (s.name === name && s.labels.app !== undefined) values.set(s.labels.app, s.value);
      return values;
    };
    const live = byApp("aomi_sessions_live");
    const warm = byApp("aomi_session_places_free");
    const turns = byApp("aomi_turn_seconds_count");
    const apps = [...new Set([...live.keys(), ...warm.keys(), ...turns.keys()])].sort();
    const rate = (app) => {
      if (!this.previous || !this.previous.turns.has(app) || !turns.has(app)) return "—";
      const rise = turns.get(app) - this.previous.turns.get(app);
      const dt = (now - this.previous.at) / 1000;
      // A count that went down is a restarted runtime (or another replica): this scrape is the new baseline.
      return dt > 0 && rise >= 0 ? (rise / dt).toFixed(2) : "—";
    };
    const rows = apps.map((app) => {
      const h = histogram(samples, "aomi_turn_seconds", (l) => l.app === app);
      return el("tr", { "data-app": app },
        el("th", { scope: "row", text: app }),
        el("td", { class: "live", text: String(live.get(app) ?? "—") }),
        el("td", { class: "warm", text: String(warm.get(app) ?? "—") }),
        el("td", { class: "rate", text: rate(app) }),
        el("td", { text: describeBounds(quantileBounds(h, 0.5)) }),
        el("td", { text: describeBounds(quantileBounds(h, 0.99)) }));
    });
    this.previous = { at: now, turns };
    const state = histogram(samples, "aomi_request_seconds", (l) => l.route === "/api/state");
    const subscribers = samples.find((s) => s.name === "aomi_stream_subscribers");
    this.holder.replaceChildren(
      el("table", { class: "glance" },
        el("caption", { text: "Per App" }),
        el("thead", {}, el("tr", {},
          ...["App", "Live", "Warm", "Turns/s", "Turn p50", "Turn p99"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...rows)),
      el("dl", { class: "glance" },
        el("dt", { text: "State reads p50 / p99" }),
        el("dd", { class: "state-latency", text: `${describeBounds(quantileBounds(state, 0.5))} / ${describeBounds(quantileBounds(state, 0.99))}` }),
        el("dt", { text: "Stream subscribers" }),
        el("dd", { class: "subscribers", text: subscribers ? String(subscribers.value) : "—" }),
        el("dt", { text: "Updated" }),
        el("dd", { text: new Date().toLocaleTimeString([], { hour12: false }) })),
      el("p", { class: "note", text:
        "Live: sessions in memory. Warm: places for live sessions free in running session actors. Percentiles are the histogram bucket that holds them, over all turns and state reads since the runtime " +
        "started. Turns/s is the rise of the turn count between two refreshes. Request latencies and stream " +
        "subscribers are those of the ingress replica that answered." }),
    );
  }
}
