/**
 * ReconnectingSocket: the connection part that ExecutionStream and ExecutionSocket
 * share. It keeps one connection open on the first of `transports` that gets
 * through: a WebSocket, else Server-Sent Events, else long-poll (transports.js).
 *
 * - A WebSocket sends a `ping` every `heartbeatMs`, and once `probeMs` after it
 *   opened when nothing came yet (if there is another transport); no answer within `pongTimeoutMs` counts as a
 *   lost connection. An event stream that brings nothing (not even the
 *   server's `: ping`) for `sseSilenceMs` is lost; a long-poll that has no
 *   answer `pollWaitS` seconds plus `pollGraceMs` after it asked is lost.
 * - A transport that cannot be opened (within `openTimeoutMs`), or that is lost before the server was
 *   heard from on it (a proxy that refuses the upgrade, or accepts it and
 *   buffers), gives way to the next transport at once; after the last one,
 *   the first is tried again after the backoff delay.
 * - A connection that was heard from and is then lost is opened again, on the
 *   same transport, with exponential backoff and jitter (at once when the
 *   browser comes back online).
 * - A refusal (close codes 4400, 4401, 4403, 4404) stops it for good.
 *
 * A subclass says where to connect (`socketUrl`, `eventStreamRequest`,
 * `longPollSocket`), what a message means (`received`), and what to do once
 * a connection is open (`opened`).
 */

import { EventStreamSocket } from "./transports.js";

// Close codes after which trying again cannot help.
export const REFUSALS = new Set([4400, 4401, 4403, 4404]);
/** Every transport, in the default order of preference. */
export const TRANSPORTS = ["websocket", "sse", "long-poll"];

export const CONNECTION_DEFAULTS = {
  baseUrl: typeof location !== "undefined" ? location.origin : "",
  transports: TRANSPORTS,
  heartbeatMs: 25000,
  pongTimeoutMs: 10000,
  probeMs: 2000,
  // A WebSocket or event stream not open after this long did not get through.
  openTimeoutMs: 10000,
  // The server writes a comment every REALTIME_SSE_HEARTBEAT (15) seconds.
  sseSilenceMs: 25000,
  pollWaitS: 30,
  pollGraceMs: 10000,
  pollIntervalMs: 1000,
  backoff: { initialMs: 500, maxMs: 30000, factor: 2 },
  headers: {},
  credentials: "same-origin",
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
  const merged = { ...defaults, ...options, backoff: { ...defaults.backoff, ...options.backoff } };
  const unknown = merged.transports.filter((name) => !TRANSPORTS.includes(name));
  if (unknown.length || !merged.transports.length) {
    throw new Error(`transports must be one or more of ${TRANSPORTS.join(", ")}; got ${merged.transports}`);
  }
  return merged;
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
    this._transportIndex = 0;
    // Whether the server was heard from on the current connection.
    this._heard = false;
    this._timers = { reconnect: null, open: null, ping: null, pong: null, probe: null, silence: null };
    this._online = () => this._reconnectNow();
  }

  /** Open the connection. Called once; it then manages itself until it is stopped. */
  start() {
    if (typeof window !== "undefined") window.addEventListener("online", this._online);
    this._connect();
    return this;
  }

  /** Close the connection for good (e.g. when the page that shows it goes away). */
  stop() {
    this.stopped = true;
    this._teardown();
    this._setState("stopped");
  }

  /** The transport of the current (or next) connection: "websocket", "sse" or "long-poll". */
  get transport() {
    return this.options.transports[this._transportIndex];
  }

  /** The delay before reconnection attempt `attempt` (0, 1, …): capped, with jitter. */
  backoffDelay(attempt) {
    return backoffDelay(this.options.backoff, attempt, this.options.random);
  }

  /** True once nothing more will be connected: stopped, failed (or ended, for a subclass). */
  get finished() {
    return this.stopped;
  }

  /** Whether a message can be sent now (on a WebSocket; the other transports take none). */
  get isOpen() {
    return this.transport === "websocket" && Boolean(this._socket) && this._socket.readyState === 1;
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

  /** `pathname` on the server as an http:// or https:// URL. */
  httpUrl(pathname, search = "") {
    const url = new URL(pathname, this.options.baseUrl);
    url.search = search;
    return url.toString();
  }

  // Hooks

  /** The WebSocket URL of the next connection. */
  socketUrl() {
    throw new Error("a ReconnectingSocket needs socketUrl()");
  }

  /** The event stream of the next connection: `{url, headers}`. */
  eventStreamRequest() {
    throw new Error("a ReconnectingSocket on Server-Sent Events needs eventStreamRequest()");
  }

  /** A LongPollSocket for the next connection; null when this client has none. */
  longPollSocket() {
    return null;
  }

  /** Called when a connection is open, before any of its messages. */
  opened() {}

  /** Called with each parsed message but `pong`, in order. */
  received(message) {}

  /** Called when the server closed the connection; by default a refusal fails, the rest reconnects. */
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

  _open() {
    if (this.transport === "websocket") return this.options.createSocket(this.socketUrl());
    if (this.transport === "sse") return new EventStreamSocket(this.eventStreamRequest(), this.options);
    return this.longPollSocket();
  }

  _connect() {
    const generation = ++this._generation;
    this._heard = false;
    this._setState(this.reconnects ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = this._open();
    } catch (error) {
      socket = null;
    }
    if (!socket) return this._unavailable();
    this._socket = socket;
    // A long-poll's first answer may take its whole wait: its own timeout applies.
    if (this.transport !== "long-poll" && !socket.quiet) {
      this._timers.open = setTimeout(() => this._lost(), this.options.openTimeoutMs);
    }
    const current = (handler) => (event) => {
      if (generation === this._generation) handler(event);
    };
    socket.onopen = current(() => this._opened());
    socket.onmessage = current((event) => this._received(event.data));
    socket.onclose = current((event) => this._closed(event));
    socket.onactivity = current(() => this._activity());
    socket.onerror = () => {}; // a close event follows
  }

  _opened() {
    this._clearTimer("open");
    this._setState("live");
    if (this.transport === "websocket") {
      this._clearTimer("ping");
      this._timers.ping = setInterval(() => this._ping(), this.options.heartbeatMs);
      // A proxy may accept the upgrade and pass nothing on: when there is another
      // transport to go to, ask early, unless the server spoke first.
      if (this.options.transports.length > 1) {
        this._timers.probe = setTimeout(() => this._heard || this._ping(), this.options.probeMs);
      }
    } else if (this.transport === "sse" && !this._socket.quiet) {
      this._armSilence();
    }
    this.opened();
  }

  _ping() {
    if (!this.send({ type: "ping" })) return;
    if (!this._timers.pong) {
      this._timers.pong = setTimeout(() => this._lost(), this.options.pongTimeoutMs);
    }
  }

  /** An event stream is lost after `sseSilenceMs` without a byte. */
  _armSilence() {
    this._clearTimer("silence");
    this._timers.silence = setTimeout(() => this._lost(), this.options.sseSilenceMs);
  }

  /** The server was heard from (any message, a heartbeat comment, an answer). */
  _activity() {
    this._heard = true;
    if (this.transport === "sse" && this._socket && !this._socket.quiet) this._armSilence();
  }

  /** No answer in time: the connection is dead even if the browser has not noticed. */
  _lost() {
    this._timers.pong = null;
    const heard = this._heard;
    this._teardown();
    if (heard) this._scheduleReconnect();
    else this._unavailable();
  }

  _closed(event) {
    const heard = this._heard;
    this._detach();
    if (this.finished) return;
    if (!heard && event.code !== 1000 && !REFUSALS.has(event.code)) this._unavailable();
    else this.closed(event);
  }

  /** The transport did not get through: the next one at once; after the last, the first
   * after the backoff delay. */
  _unavailable() {
    if (this.finished) return;
    const last = this._transportIndex + 1 >= this.options.transports.length;
    this._transportIndex = last ? 0 : this._transportIndex + 1;
    if (last) return this._scheduleReconnect();
    this.reconnects += 1;
    this._connect();
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
    let message = data;
    if (typeof data === "string") {
      try {
        message = JSON.parse(data);
      } catch {
        return;
      }
    }
    this._activity();
    this._clearTimer("pong"); // any message shows the connection is alive
    if (message === null || typeof message !== "object") return;
    if (message.type === "pong") return this.options.onPong(message);
    this.received(message);
  }

  // Housekeeping

  _setState(state, detail = {}) {
    this.state = state;
    this.options.onStateChange(state, {
      ...detail,
      ...this.stateDetail(),
      transport: this.transport,
      reconnects: this.reconnects,
    });
  }

  _clearTimer(name) {
    clearTimeout(this._timers[name]);
    clearInterval(this._timers[name]);
    this._timers[name] = null;
  }

  /** Stop listening to the current connection (its late events are ignored). */
  _detach() {
    this._generation += 1;
    for (const name of ["open", "ping", "pong", "probe", "silence"]) this._clearTimer(name);
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
