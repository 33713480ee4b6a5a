// Calls to the runtime's public routes, as any client makes them. Paths are resolved against the page's folder,
// so the console works wherever the runtime is served (at the root, or under a route prefix).

const BASE = new URL(".", location.href);

export function url(path, params = {}) {
  const u = new URL(path, BASE);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(name, value);
  }
  return u;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One request: the App key only ever goes in the X-API-Key header, the session id in X-Session-Id.
export async function request(method, path, { params, body, session, key, headers = {}, signal } = {}) {
  const sent = { ...headers };
  if (key) sent["X-API-Key"] = key;
  if (session) sent["X-Session-Id"] = session;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const response = await fetch(url(path, params), {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("application/json") ? await response.json() : await response.text();
  if (!response.ok) {
    const why = data && typeof data === "object" && data.error ? data.error : `${response.status}`;
    throw new ApiError(response.status, why);
  }
  return data;
}

// A UUID4 made here, as clients make session ids; crypto.randomUUID exists only in secure contexts (https,
// localhost), so the same from getRandomValues elsewhere (a runtime served over http on a LAN address).
export function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// A small helper for building elements without innerHTML (no markup from the runtime is ever parsed).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// Resolves after `ms`, or at once when `signal` aborts; either way the other is undone (a long-lived signal does
// not collect one listener per sleep).
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export function clock(date) {
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

// Change what `scroller` shows, keeping it scrolled to its end if it was there (a reader scrolled up stays put).
export function following(scroller, change) {
  const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  change();
  if (atEnd) scroller.scrollTop = scroller.scrollHeight;
}
