/**
 * ExecutionStream: follow one execution over the execution stream protocol
 * (docs/protocol.md, docs/asyncapi.yaml). A plain ES module with no
 * dependencies; the dashboard uses it, and so can any other front end.
 *
 *   import { ExecutionStream } from "/static/dashboard/execution-stream.js";
 *
 *   const stream = new ExecutionStream(executionId, {
 *     lastSeq: 0,                 // replay every event; leave out for a snapshot first
 *     onStatus: (message) => render(message),
 *     onNode: (message) => renderNode(message),
 *     onLog: (message) => appendLog(message),
 *     onEnd: (message) => done(message),          // the terminal status; the stream stopped
 *     onStateChange: (state) => showConnection(state),
 *   });
 *   stream.start();
 *
 * What it takes care of:
 * - every event is delivered once, in `seq` order: duplicates are dropped and a
 *   gap is filled from `GET /api/v1/executions/{id}/events?after=N` first;
 * - a `ping` every 25 s; no answer within 10 s counts as a lost connection;
 * - a lost connection is retried with exponential backoff and jitter (at once
 *   when the browser comes back online), resuming with `?last_seq=N`;
 * - a status whose result was cut (`result_truncated`: longer than the
 *   server's EXECUTIONS_EVENT_RESULT_LIMIT) is delivered with the whole result,
 *   read from `GET /api/v1/executions/{id}` first;
 * - it stops after the terminal status (completed, failed, cancelled), or for
 *   good on a refusal (close codes 4400, 4401, 4403, 4404; see `onFail`).
 *
 * In a browser the socket and REST calls use the session cookie. Elsewhere
 * pass `createSocket` (e.g. with an `Authorization: Bearer` header) and
 * `headers` for the REST calls.
 */

export const TERMINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);
const EVENT_TYPES = new Set(["status", "node", "log"]);
// Close codes after which trying again cannot help.
const REFUSALS = new Set([4400, 4401, 4403, 4404]);

const DEFAULTS = {
  baseUrl: typeof location !== "undefined" ? location.origin : "",
  lastSeq: null,
  heartbeatMs: 25000,
  pongTimeoutMs: 10000,
  backoff: { initialMs: 500, maxMs: 30000, factor: 2 },
  headers: {},
  random: Math.random,
  createSocket: (url) => new WebSocket(url),
  fetch: (...args) => globalThis.fetch(...args),
  onStatus() {},
  onNode() {},
  onLog() {},
  onEvent() {},
  onEnd() {},
  onPong() {},
  onError() {},
  onFail() {},
  onStateChange() {},
};

export class ExecutionStream {
  /**
   * @param {string} executionId
   * @param {object} options  see DEFAULTS; every callback is optional.
   */
  constructor(executionId, options = {}) {
    this.executionId = executionId;
    this.options = { ...DEFAULTS, ...options, backoff: { ...DEFAULTS.backoff, ...options.backoff } };
    /** The seq of the last event delivered; null until the first one. */
    this.lastSeq = this.options.lastSeq;
    /** "idle" | "connecting" | "live" | "reconnecting" | "ended" | "failed" | "stopped" */
    this.state = "idle";
    this.ended = false;
    this.stopped = false;
    this.reconnects = 0;
    this._socket = null;
    this._generation = 0;
    this._attempt = 0;
    this._queue = Promise.resolve();
    this._timers = { reconnect: null, ping: null, pong: null };
    this._online = () => this._reconnectNow();
  }

  /** Open the socket. Called once; the stream then manages itself until it ends. */
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
    const { initialMs, maxMs, factor } = this.options.backoff;
    const ceiling = Math.min(maxMs, initialMs * factor ** attempt);
    return ceiling / 2 + (this.options.random() * ceiling) / 2;
  }

  socketUrl() {
    const base = new URL(this.options.baseUrl);
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    base.pathname = `/api/v1/ws/executions/${this.executionId}`;
    base.search = this.lastSeq === null ? "" : `?last_seq=${this.lastSeq}`;
    return base.toString();
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
  }

  _ping() {
    if (!this._socket || this._socket.readyState !== 1) return;
    this._socket.send(JSON.stringify({ type: "ping" }));
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
    if (this.stopped || this.ended) return;
    if (REFUSALS.has(event.code)) {
      this._fail(event.code, event.reason);
    } else if (event.code === 1000) {
      // The server has nothing more to send, yet no terminal status arrived
      // here: read the log to be sure, then try again if still not ended.
      this._enqueue(() => this._fill(Infinity)).then(() => this._scheduleReconnect());
    } else {
      this._scheduleReconnect();
    }
  }

  _scheduleReconnect() {
    if (this.stopped || this.ended || this._timers.reconnect) return;
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

  _fail(code, reason) {
    this.stopped = true;
    this._teardown();
    this._setState("failed", { code, reason });
    this.options.onFail({ code, reason });
  }

  // Messages

  _received(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    this._clearTimer("pong"); // any message shows the connection is alive
    if (message.type === "pong") return this.options.onPong(message);
    if (message.type === "error") return this.options.onError(message);
    if (!EVENT_TYPES.has(message.type)) return; // a newer server's message: ignore
    this._attempt = 0;
    this._enqueue(() => this._accept(message));
  }

  /** Run `step` after every earlier one, so that events are handled one at a time. */
  _enqueue(step) {
    this._queue = this._queue.then(step).catch((error) => {
      console.warn("execution stream: reconnecting after", error);
      this._teardown();
      this._scheduleReconnect();
    });
    return this._queue;
  }

  /** Deliver `message` if it is the next event, after filling any gap before it. Events
   * queued from a socket that has since closed still count: seq alone decides. */
  async _accept(message) {
    if (this.ended) return;
    if (this.lastSeq === null) return this._deliver(message); // the snapshot
    if (message.seq <= this.lastSeq) return; // seen already
    if (message.seq > this.lastSeq + 1) await this._fill(message.seq - 1);
    if (!this.ended && message.seq === this.lastSeq + 1) await this._deliver(message);
  }

  /** Deliver the stored events after lastSeq, up to `upto`, from the REST API. */
  async _fill(upto) {
    let url = this._eventsUrl();
    while (url && !this.ended && this.lastSeq < upto) {
      const response = await this.options.fetch(url, {
        headers: { Accept: "application/json", ...this.options.headers },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
      const page = await response.json();
      for (const event of page.results) {
        if (this.ended || event.seq > upto) return;
        if (event.seq === this.lastSeq + 1) await this._deliver(event);
      }
      url = page.next;
    }
  }

  /** A status whose result was cut (`result_truncated`), with the whole result
   * from `GET /api/v1/executions/{id}`; the markers are dropped. */
  async _withWholeResult(message) {
    const url = new URL(`/api/v1/executions/${this.executionId}`, this.options.baseUrl).toString();
    const response = await this.options.fetch(url, {
      headers: { Accept: "application/json", ...this.options.headers },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
    const { result } = await response.json();
    const { result_truncated, result_size, ...rest } = message;
    return { ...rest, result };
  }

  _eventsUrl() {
    const url = new URL(`/api/v1/executions/${this.executionId}/events`, this.options.baseUrl);
    url.search = `?after=${this.lastSeq ?? 0}&limit=1000`;
    return url.toString();
  }

  async _deliver(message) {
    if (message.type === "status" && message.result_truncated) {
      message = await this._withWholeResult(message);
    }
    this.lastSeq = message.seq;
    const handler = { status: "onStatus", node: "onNode", log: "onLog" }[message.type];
    this.options[handler](message);
    this.options.onEvent(message);
    if (message.type === "status" && TERMINAL_STATUSES.has(message.status)) this._end(message);
  }

  _end(message) {
    this.ended = true;
    this._teardown();
    this._setState("ended");
    this.options.onEnd(message);
  }

  // Housekeeping

  _setState(state, detail = {}) {
    this.state = state;
    this.options.onStateChange(state, { ...detail, lastSeq: this.lastSeq, reconnects: this.reconnects });
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
    if (this.ended || this.stopped) {
      if (typeof window !== "undefined") window.removeEventListener("online", this._online);
    }
    if (socket && socket.readyState <= 1) socket.close(1000);
  }
}
