/**
 * ReconnectingSocket: the connection part that ExecutionStream and ExecutionSocket
 * share. It keeps one WebSocket open: a `ping` every `heartbeatMs`, no answer
 * within `pongTimeoutMs` counts as a lost connection, and a lost connection is
 * retried with exponential backoff and jitter (at once when the browser comes
 * back online). A refusal (close codes 4400, 4401, 4403, 4404) stops it for good.
 *
 * A subclass says where to connect (`socketUrl`), what a message means
 * (`received`), and what to do once a connection is open (`opened`).
 */

// Close codes after which trying again cannot help.
export const REFUSALS = new Set([4400, 4401, 4403, 4404]);

export const CONNECTION_DEFAULTS = {
  baseUrl: typeof location !== "undefined" ? location.origin : "",
  heartbeatMs: 25000,
  pongTimeoutMs: 10000,
  backoff: { initialMs: 500, maxMs: 30000, factor: 2 },
  headers: {},
  random: Math.random,
  createSocket: (url) => new WebSocket(url),
  fetch: (...args) => globalThis.fetch(...args),
  onPong() {},
  onError() {},
  onFail() {},
  onStateChange() {},
};

/** `defaults` overridden by `options`, the backoff merged field by field. */
export function withDefaults(defaults, options) {
  return { ...defaults, ...options, backoff: { ...defaults.backoff, ...options.backoff } };
}

/** The delay before attempt `attempt` (0, 1, …) of `backoff`: capped, between half and all of the step. */
export function backoffDelay(backoff, attempt, random) {
  const { initialMs, maxMs, factor } = backoff;
  const ceiling = Math.min(maxMs, initialMs * factor ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

export class ReconnectingSocket {
  constructor(options) {
    this.options = options;
    /** "idle" | "connecting" | "live" | "reconnecting" | "ended" | "failed" | "stopped" */
    this.state = "idle";
    this.stopped = false;
    this.reconnects = 0;
    this._socket = null;
    this._generation = 0;
    this._attempt = 0;
    this._timers = { reconnect: null, ping: null, pong: null };
    this._online = () => this._reconnectNow();
  }

  /** Open the socket. Called once; it then manages itself until it is stopped. */
  start() {
    if (typeof window !== "undefined") window.addEventListener("online", this._online);
    this._connect();
    return this;
  }

  /** Close the socket for good (e.g. when the page that shows it goes away). */
  stop() {
    this.stopped = true;
    this._teardown();
    this._setState("stopped");
  }

  /** The delay before reconnection attempt `attempt` (0, 1, …): capped, with jitter. */
  backoffDelay(attempt) {
    return backoffDelay(this.options.backoff, attempt, this.options.random);
  }

  /** True once nothing more will be connected: stopped, failed (or ended, for a subclass). */
  get finished() {
    return this.stopped;
  }

  /** Whether a message can be sent now. */
  get isOpen() {
    return Boolean(this._socket) && this._socket.readyState === 1;
  }

  /** Send `message` as JSON on the open socket; false when there is none. */
  send(message) {
    if (!this.isOpen) return false;
    this._socket.send(JSON.stringify(message));
    return true;
  }

  /** `pathname` on the server as a ws:// or wss:// URL. */
  websocketUrl(pathname, search = "") {
    const base = new URL(this.options.baseUrl);
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    base.pathname = pathname;
    base.search = search;
    return base.toString();
  }

  // Hooks

  /** The URL of the next connection. */
  socketUrl() {
    throw new Error("a ReconnectingSocket needs socketUrl()");
  }

  /** Called when a connection is open, before any of its messages. */
  opened() {}

  /** Called with each parsed message but `pong`, in order. */
  received(message) {}

  /** Called when the server closed the socket; by default a refusal fails, the rest reconnects. */
  closed(event) {
    if (REFUSALS.has(event.code)) this._fail(event.code, event.reason);
    else this._scheduleReconnect();
  }

  /** Extra fields for `onStateChange`'s detail. */
  stateDetail() {
    return {};
  }

  /** Messages arrive again: the next lost connection is retried after the shortest delay. */
  connectionProven() {
    this._attempt = 0;
  }

  // Connection

  _connect() {
    const generation = ++this._generation;
    this._setState(this.reconnects ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = this.options.createSocket(this.socketUrl());
    } catch (error) {
      this._scheduleReconnect();
      return;
    }
    this._socket = socket;
    const current = (handler) => (event) => {
      if (generation === this._generation) handler(event);
    };
    socket.onopen = current(() => this._opened());
    socket.onmessage = current((event) => this._received(event.data));
    socket.onclose = current((event) => this._closed(event));
    socket.onerror = () => {}; // a close event follows
  }

  _opened() {
    this._setState("live");
    this._clearTimer("ping");
    this._timers.ping = setInterval(() => this._ping(), this.options.heartbeatMs);
    this.opened();
  }

  _ping() {
    if (!this.send({ type: "ping" })) return;
    if (!this._timers.pong) {
      this._timers.pong = setTimeout(() => this._lost(), this.options.pongTimeoutMs);
    }
  }

  /** No pong in time: the connection is dead even if the browser has not noticed. */
  _lost() {
    this._timers.pong = null;
    this._teardown();
    this._scheduleReconnect();
  }

  _closed(event) {
    this._detach();
    if (!this.finished) this.closed(event);
  }

  _scheduleReconnect() {
    if (this.finished || this._timers.reconnect) return;
    const delay = this.backoffDelay(this._attempt++);
    this._setState("reconnecting", { delay });
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      this.reconnects += 1;
      this._connect();
    }, delay);
  }

  _reconnectNow() {
    if (!this._timers.reconnect) return;
    this._clearTimer("reconnect");
    this._attempt = 0;
    this.reconnects += 1;
    this._connect();
  }

  /** Drop the current connection and connect again after the backoff delay. */
  _reconnect() {
    this._teardown();
    this._scheduleReconnect();
  }

  _fail(code, reason) {
    this.stopped = true;
    this._teardown();
    this._setState("failed", { code, reason });
    this.options.onFail({ code, reason });
  }

  _received(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    this._clearTimer("pong"); // any message shows the connection is alive
    if (message.type === "pong") return this.options.onPong(message);
    this.received(message);
  }

  // Housekeeping

  _setState(state, detail = {}) {
    this.state = state;
    this.options.onStateChange(state, { ...detail, ...this.stateDetail(), reconnects: this.reconnects });
  }

  _clearTimer(name) {
    clearTimeout(this._timers[name]);
    clearInterval(this._timers[name]);
    this._timers[name] = null;
  }

  /** Stop listening to the current socket (its late events are ignored). */
  _detach() {
    this._generation += 1;
    this._clearTimer("ping");
    this._clearTimer("pong");
    this._socket = null;
  }

  _teardown() {
    const socket = this._socket;
    this._detach();
    this._clearTimer("reconnect");
    if (this.finished && typeof window !== "undefined") {
      window.removeEventListener("online", this._online);
    }
    if (socket && socket.readyState <= 1) socket.close(1000);
  }
}
