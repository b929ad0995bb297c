/**
 * ExecutionSocket: many executions, and the live list of executions, on one
 * socket (`/api/v1/ws`; docs/protocol.md, "One socket for many executions").
 * A plain ES module with no dependencies, like ExecutionStream, with which it
 * shares the connection (heartbeat, backoff, reconnect) and the ordered delivery.
 *
 *   import { ExecutionSocket } from "workflow-push";
 *
 *   const socket = new ExecutionSocket({ onStateChange: (state) => showConnection(state) }).start();
 *   const run = socket.subscribe(executionId, {
 *     lastSeq: 0,                 // replay every event; leave out for a snapshot first
 *     onStatus: (message) => render(message),
 *     onChunk: (message) => appendOutput(message), // a piece of a node's streamed output
 *     onEnd: (message) => done(message),     // the terminal status; the subscription ended
 *   });
 *   const list = socket.feed({ status: ["running"] }, {
 *     onExecution: (execution) => showRow(execution),   // each newer state of each execution
 *   });
 *   run.stop(); list.stop(); socket.stop();
 *
 * Each subscription takes ExecutionStream's callbacks (onStatus, onNode, onLog,
 * onChunk, onEvent, onEnd, onError, onFail) and gets what ExecutionStream
 * would: every event once, in `seq` order (gaps filled from the events
 * endpoint, a cut result read whole), until the terminal status. The feed
 * calls `onExecution` only with a state newer (higher `last_seq`) than the one
 * it had of that execution. After a lost connection every subscription is
 * resubscribed with its last `seq`, and the feed with its last cursor, so
 * nothing is missed and nothing comes twice.
 *
 * Where no WebSocket gets through it reads `GET /api/v1/stream?executions=…&feed=…`
 * (Server-Sent Events) instead, resuming every subscription and the feed with
 * the composite `Last-Event-ID`; a subscription or feed that starts or stops
 * then opens the stream again with the new set (`restreamMs` later, so that a
 * page of them opens it once). It has no long-poll: "long-poll" in
 * `transports` is passed over.
 */

import { FEED, Feed, Subscription } from "./execution-subscriptions.js";
import { CONNECTION_DEFAULTS, ReconnectingSocket, withDefaults } from "./reconnecting-socket.js";

const DEFAULTS = {
  ...CONNECTION_DEFAULTS,
  // Subscribe and unsubscribe requests sent in any one second at most: half the
  // server's REALTIME_MAX_SUBSCRIBES_PER_SECOND, so that two of these windows
  // never add up to more than its one.
  subscribesPerSecond: 250,
  restreamMs: 20,
};

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
    this._restream = null;
  }

  /** Follow one execution; see SUBSCRIPTION_DEFAULTS in execution-subscriptions.js for the options. */
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
   * it replaces the socket's feed, if it has one. See FEED_DEFAULTS in execution-subscriptions.js for the options. */
  feed(filter, options = {}) {
    this._feed?.stop();
    this._feed = new Feed(this, filter, options);
    this._feedSubscribe(this._feed);
    return this._feed;
  }

  socketUrl() {
    return this.websocketUrl("/api/v1/ws");
  }

  /** The event stream of every active subscription and the feed, each from where it is. */
  eventStreamRequest() {
    const subscriptions = [...this.subscriptions.values()].filter((s) => s.active);
    const feed = this._feed?.active ? this._feed : null;
    const query = new URLSearchParams();
    if (subscriptions.length) query.set("executions", subscriptions.map((s) => s.executionId).join(","));
    if (feed) {
      query.set("feed", FEED);
      for (const [name, value] of Object.entries(feed.filter)) {
        query.set(name, Array.isArray(value) ? value.join(",") : String(value));
      }
    }
    if (!subscriptions.length && !feed) return null; // nothing to follow: no stream
    const headers = {};
    const cursor = feed?.cursor ?? null;
    if (cursor !== null || subscriptions.some((s) => s.lastSeq !== null)) {
      const seqs = subscriptions.map((s) => (s.lastSeq === null ? "" : String(s.lastSeq)));
      headers["Last-Event-ID"] = `${seqs.join(",")};${cursor ?? ""}`;
    }
    return { url: this.httpUrl("/api/v1/stream", `?${query}`), headers };
  }

  _open() {
    if (this.transport !== "sse") return super._open();
    const request = this.eventStreamRequest();
    return request ? super._open() : new IdleStream();
  }

  /** A new connection: every subscription and the feed again, from where they are. */
  opened() {
    this._requests = [];
    this._window = { start: 0, sent: 0 };
    this._feedAsked = false;
    this._feedDraining = false;
    if (this.transport !== "websocket") return; // the stream's request named them all
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
    if (this.transport !== "websocket") return this._restreamSoon();
    if (!this.isOpen || this._feedDraining || feed !== this._feed) return;
    this._feedAsked = true;
    this._request(() => (feed.active && feed === this._feed ? feed.subscribeMessage() : null));
  }

  /** `feed` stopped (or was refused: `answered`, the server has none). */
  _feedStopped(feed, { answered = false } = {}) {
    if (feed !== this._feed) return;
    this._feed = null;
    if (this.transport !== "websocket") return this._restreamSoon();
    if (this._feedAsked && !answered && this.isOpen) {
      this._feedDraining = true;
      this._request(() => ({ type: "unsubscribe", feed: FEED }));
    }
    this._feedAsked = false;
  }

  // Requests, paced under the server's subscribe rate

  _request(build) {
    if (this.transport !== "websocket") return this._restreamSoon();
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

  /** On an event stream, what is followed changed: open it again with the new set
   * (unless a connection is being waited for, which will read the set then). */
  _restreamSoon() {
    if (this._restream || !this._socket || this.finished) return;
    this._restream = setTimeout(() => {
      this._restream = null;
      if (!this._socket || this.finished || this.transport === "websocket") return;
      this._teardown();
      this._connect();
    }, this.options.restreamMs);
  }

  _forget(subscription) {
    if (this.subscriptions.get(subscription.executionId) === subscription) {
      this.subscriptions.delete(subscription.executionId);
    }
  }

  _teardown() {
    clearTimeout(this._pumping);
    this._pumping = null;
    clearTimeout(this._restream);
    this._restream = null;
    this._requests = [];
    super._teardown();
  }
}

/** An event stream with nothing to follow: open, silent, and never lost. */
class IdleStream {
  constructor() {
    this.readyState = 1;
    this.quiet = true;
    queueMicrotask(() => this.readyState === 1 && this.onopen({}));
  }

  send() {}

  close() {
    this.readyState = 3;
  }
}
