/**
 * What ExecutionSocket keeps for each execution it follows (Subscription) and
 * for its executions feed (Feed): what was delivered, and how to ask for the
 * rest after a reconnect. Made by `ExecutionSocket.subscribe` and `.feed`.
 */

import { EVENT_CALLBACKS, EVENT_TYPES, EventSequence } from "./execution-events.js";
import { backoffDelay } from "./reconnecting-socket.js";

// A subscription or feed that the server could not go on with: subscribe again.
const TRY_AGAIN = new Set([1011, 1013]);
export const FEED = "executions";
// Executions whose newest state a feed remembers (the server remembers as many).
const REMEMBERED = 10000;

const SUBSCRIPTION_DEFAULTS = {
  ...EVENT_CALLBACKS,
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
    const { baseUrl, headers, fetch, credentials } = socket.options;
    this._events = new EventSequence(executionId, { ...this.options, baseUrl, headers, fetch, credentials }, {
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
