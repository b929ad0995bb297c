/**
 * ExecutionSocket: many executions, and the live list of executions, on one
 * socket (`/api/v1/ws`; docs/protocol.md, "One socket for many executions").
 * A plain ES module with no dependencies, like ExecutionStream, with which it
 * shares the connection (heartbeat, backoff, reconnect) and the ordered delivery.
 *
 *   import { ExecutionSocket } from "/static/dashboard/execution-socket.js";
 *
 *   const socket = new ExecutionSocket({ onStateChange: (state) => showConnection(state) }).start();
 *   const run = socket.subscribe(executionId, {
 *     lastSeq: 0,                 // replay every event; leave out for a snapshot first
 *     onStatus: (message) => render(message),
 *     onEnd: (message) => done(message),     // the terminal status; the subscription ended
 *   });
 *   const list = socket.feed({ status: ["running"] }, {
 *     onExecution: (execution) => showRow(execution),   // each newer state of each execution
 *   });
 *   run.stop(); list.stop(); socket.stop();
 *
 * Each subscription gets what ExecutionStream would: every event once, in `seq`
 * order (gaps filled from the events endpoint, a cut result read whole), until
 * the terminal status. The feed calls `onExecution` only with a state newer
 * (higher `last_seq`) than the one it had of that execution. After a lost
 * connection every subscription is resubscribed with its last `seq`, and the
 * feed with its last cursor, so nothing is missed and nothing comes twice.
 */

import { EVENT_TYPES, EventSequence } from "./execution-events.js";
import { backoffDelay, CONNECTION_DEFAULTS, ReconnectingSocket, withDefaults } from "./reconnecting-socket.js";

// A subscription or feed that the server could not go on with: subscribe again.
const TRY_AGAIN = new Set([1011, 1013]);
const FEED = "executions";
// Executions whose newest state a feed remembers (the server remembers as many).
const REMEMBERED = 10000;

const DEFAULTS = {
  ...CONNECTION_DEFAULTS,
  // Subscribe and unsubscribe requests sent in any one second at most: half the
  // server's REALTIME_MAX_SUBSCRIBES_PER_SECOND, so that two of these windows
  // never add up to more than its one.
  subscribesPerSecond: 250,
};

const SUBSCRIPTION_DEFAULTS = {
  lastSeq: null,
  onStatus() {},
  onNode() {},
  onLog() {},
  onEvent() {},
  onEnd() {},
  onError() {},
  onFail() {},
};

const FEED_DEFAULTS = { cursor: null, onExecution() {}, onError() {}, onFail() {} };

/** One execution followed on an ExecutionSocket; made by `ExecutionSocket.subscribe`. */
export class Subscription {
  constructor(socket, executionId, options) {
    this.socket = socket;
    this.executionId = executionId;
    this.options = { ...SUBSCRIPTION_DEFAULTS, ...options };
    /** "subscribed" | "ended" | "failed" | "stopped" */
    this.state = "subscribed";
    this._attempt = 0;
    this._retry = null;
    const { baseUrl, headers, fetch } = socket.options;
    this._events = new EventSequence(executionId, { ...this.options, baseUrl, headers, fetch }, {
      ended: (message) => this._end(message),
      broken: (error) => {
        console.warn(`execution ${executionId}: subscribing again after`, error);
        this._subscribeAgain();
      },
    });
  }

  /** The seq of the last event delivered; null until the first one. */
  get lastSeq() {
    return this._events.lastSeq;
  }

  get active() {
    return this.state === "subscribed";
  }

  /** Stop following the execution: no event after the one being delivered reaches a callback. */
  stop() {
    if (!this.active) return;
    this._finish("stopped");
    this.socket._request(() => ({ type: "unsubscribe", execution_id: this.executionId }));
  }

  /** The request that (re)subscribes from the last event delivered. */
  subscribeMessage() {
    const message = { type: "subscribe", execution_id: this.executionId };
    if (this.lastSeq !== null) message.last_seq = this.lastSeq;
    return message;
  }

  /** Called with each message the server sent for this execution. */
  received(message) {
    if (!this.active) return;
    if (EVENT_TYPES.has(message.type)) {
      this._attempt = 0;
      this._events.enqueue(() => this._events.accept(message));
    } else if (message.type === "unsubscribed" && message.reason === "ended") {
      // The server has nothing more to send, yet no terminal status arrived
      // here: read the log to be sure, then subscribe again if still not ended.
      this._events.enqueue(() => this._events.fill(Infinity)).then(() => this._subscribeAgain());
    } else if (message.type === "error") {
      this.options.onError(message);
      if (TRY_AGAIN.has(message.code)) this._subscribeAgain();
      else this._fail(message.code, message.message);
    }
  }

  /** Resubscribe from lastSeq after the backoff delay (the server's subscription,
   * if any, goes first, since subscribing twice would change nothing). */
  _subscribeAgain() {
    if (!this.active || this._retry) return;
    const { backoff, random } = this.socket.options;
    this._retry = setTimeout(() => {
      this._retry = null;
      if (!this.active) return;
      this.socket._request(() => ({ type: "unsubscribe", execution_id: this.executionId }));
      this.socket._request(() => (this.active ? this.subscribeMessage() : null));
    }, backoffDelay(backoff, this._attempt++, random));
  }

  _end(message) {
    if (!this.active) return; // stopped from a callback of this very message
    this._finish("ended");
    this.options.onEnd(message);
  }

  _fail(code, reason) {
    this._finish("failed");
    this.options.onFail({ code, reason });
  }

  _finish(state) {
    this.state = state;
    this._events.halt(); // what is queued for it is not delivered
    clearTimeout(this._retry);
    this._retry = null;
    this.socket._forget(this);
  }
}

/** The executions feed on an ExecutionSocket; made by `ExecutionSocket.feed`. */
export class Feed {
  constructor(socket, filter, options) {
    this.socket = socket;
    this.filter = cleanFilter(filter);
    this.options = { ...FEED_DEFAULTS, ...options };
    /** The cursor of the last execution message: a resume starts from it. */
    this.cursor = this.options.cursor;
    /** Each execution's newest state received, by id. */
    this.states = new Map();
    /** "subscribed" | "failed" | "stopped" */
    this.state = "subscribed";
    this._attempt = 0;
    this._retry = null;
  }

  get active() {
    return this.state === "subscribed";
  }

  /** Stop the feed: no callback is called after this. */
  stop() {
    if (!this.active) return;
    this.state = "stopped";
    clearTimeout(this._retry);
    this.socket._feedStopped(this);
  }

  subscribeMessage() {
    const message = { type: "subscribe", feed: FEED, filter: this.filter };
    if (this.cursor !== null) message.cursor = this.cursor;
    return message;
  }

  /** Called with each message of the feed's (never one of a feed it replaced). */
  received(message) {
    if (!this.active) return;
    if (message.type === "execution") {
      this._attempt = 0;
      const state = message.execution;
      const known = this.states.get(state.id);
      if (!known || state.last_seq > known.last_seq) {
        this._remember(state);
        this.options.onExecution(state);
      }
      this.cursor = message.cursor;
    } else if (message.type === "error") {
      this.options.onError(message);
      if (TRY_AGAIN.has(message.code)) this._subscribeAgain();
      else this._fail(message.code, message.message);
    }
  }

  /** Keep `state`, forgetting the executions least recently changed past REMEMBERED. */
  _remember(state) {
    this.states.delete(state.id);
    this.states.set(state.id, state);
    if (this.states.size > REMEMBERED) this.states.delete(this.states.keys().next().value);
  }

  _subscribeAgain() {
    if (this._retry) return;
    const { backoff, random } = this.socket.options;
    this._retry = setTimeout(() => {
      this._retry = null;
      if (this.active) this.socket._feedSubscribe(this);
    }, backoffDelay(backoff, this._attempt++, random));
  }

  _fail(code, reason) {
    this.state = "failed";
    clearTimeout(this._retry);
    this.socket._feedStopped(this, { answered: true });
    this.options.onFail({ code, reason });
  }
}

/** The filter without its empty fields (an empty status list or tag means "any"). */
function cleanFilter(filter) {
  const clean = {};
  for (const [key, value] of Object.entries(filter ?? {})) {
    const empty = value === null || value === undefined || value === "";
    if (!empty && !(Array.isArray(value) && value.length === 0)) clean[key] = value;
  }
  return clean;
}

export class ExecutionSocket extends ReconnectingSocket {
  /** @param {object} options  see DEFAULTS (and ExecutionStream's); every callback is optional. */
  constructor(options = {}) {
    super(withDefaults(DEFAULTS, options));
    /** The subscriptions being followed, by execution id. */
    this.subscriptions = new Map();
    this._feed = null;
    // Whether the server has (or is being asked for) the current feed, and
    // whether an unsubscribe of an earlier one is still unanswered: until it
    // is, what arrives for a feed is the earlier one's.
    this._feedAsked = false;
    this._feedDraining = false;
    this._requests = [];
    this._window = { start: 0, sent: 0 };
    this._pumping = null;
  }

  /** Follow one execution; see SUBSCRIPTION_DEFAULTS for the options. */
  subscribe(executionId, options = {}) {
    if (this.subscriptions.has(executionId)) {
      throw new Error(`Execution ${executionId} is followed already: stop() that subscription first.`);
    }
    const subscription = new Subscription(this, executionId, options);
    this.subscriptions.set(executionId, subscription);
    this._request(() => (subscription.active ? subscription.subscribeMessage() : null));
    return subscription;
  }

  /** Stop following `executionId` (as its subscription's `stop()`). */
  unsubscribe(executionId) {
    this.subscriptions.get(executionId)?.stop();
  }

  /** Follow the executions feed with `filter` ({workflow_id, status: [...], tag});
   * it replaces the socket's feed, if it has one. See FEED_DEFAULTS for the options. */
  feed(filter, options = {}) {
    this._feed?.stop();
    this._feed = new Feed(this, filter, options);
    this._feedSubscribe(this._feed);
    return this._feed;
  }

  socketUrl() {
    return this.websocketUrl("/api/v1/ws");
  }

  /** A new connection: every subscription and the feed again, from where they are. */
  opened() {
    this._requests = [];
    this._window = { start: 0, sent: 0 };
    this._feedAsked = false;
    this._feedDraining = false;
    for (const subscription of this.subscriptions.values()) {
      this._request(() => (subscription.active ? subscription.subscribeMessage() : null));
    }
    if (this._feed) this._feedSubscribe(this._feed);
  }

  received(message) {
    if ("feed" in message) return this._feedMessage(message);
    if (!("execution_id" in message)) {
      if (message.type === "error") this.options.onError(message);
      return; // a newer server's message: ignore
    }
    if (message.type !== "error") this.connectionProven();
    this.subscriptions.get(message.execution_id)?.received(message);
  }

  // The feed

  _feedMessage(message) {
    if (message.type === "unsubscribed") {
      if (!this._feedDraining) return;
      this._feedDraining = false;
      if (this._feed && !this._feedAsked) this._feedSubscribe(this._feed);
    } else if (!this._feedDraining && this._feed) {
      if (message.type === "execution") this.connectionProven();
      this._feed.received(message);
    }
  }

  _feedSubscribe(feed) {
    if (!this.isOpen || this._feedDraining || feed !== this._feed) return;
    this._feedAsked = true;
    this._request(() => (feed.active && feed === this._feed ? feed.subscribeMessage() : null));
  }

  /** `feed` stopped (or was refused: `answered`, the server has none). */
  _feedStopped(feed, { answered = false } = {}) {
    if (feed !== this._feed) return;
    this._feed = null;
    if (this._feedAsked && !answered && this.isOpen) {
      this._feedDraining = true;
      this._request(() => ({ type: "unsubscribe", feed: FEED }));
    }
    this._feedAsked = false;
  }

  // Requests, paced under the server's subscribe rate

  _request(build) {
    if (!this.isOpen) return; // `opened` subscribes again from the state as it is then
    this._requests.push(build);
    this._pump();
  }

  _pump() {
    if (this._pumping) return;
    const now = Date.now();
    if (now - this._window.start >= 1000) this._window = { start: now, sent: 0 };
    while (this._requests.length && this._window.sent < this.options.subscribesPerSecond) {
      if (!this.isOpen) return;
      const message = this._requests.shift()();
      if (message && this.send(message)) this._window.sent += 1;
    }
    if (this._requests.length) {
      this._pumping = setTimeout(() => {
        this._pumping = null;
        this._pump();
      }, this._window.start + 1000 - now);
    }
  }

  _forget(subscription) {
    if (this.subscriptions.get(subscription.executionId) === subscription) {
      this.subscriptions.delete(subscription.executionId);
    }
  }

  _teardown() {
    clearTimeout(this._pumping);
    this._pumping = null;
    this._requests = [];
    super._teardown();
  }
}
