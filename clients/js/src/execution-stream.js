/**
 * ExecutionStream: follow one execution over the execution stream protocol
 * (docs/protocol.md, docs/asyncapi.yaml). A plain ES module with no
 * dependencies; the dashboard uses it, and so can any other front end.
 *
 *   import { ExecutionStream } from "workflow-push";
 *
 *   const stream = new ExecutionStream(executionId, {
 *     lastSeq: 0,                 // replay every event; leave out for a snapshot first
 *     onStatus: (message) => render(message),
 *     onNode: (message) => renderNode(message),
 *     onLog: (message) => appendLog(message),
 *     onChunk: (message) => appendOutput(message), // a piece of a node's streamed output
 *     onEnd: (message) => done(message),          // the terminal status; the stream stopped
 *     onStateChange: (state) => showConnection(state),
 *   });
 *   stream.start();
 *
 * What it takes care of:
 * - every event (status, node, log, chunk) is delivered once, in `seq` order:
 *   duplicates are dropped and a gap is filled from
 *   `GET /api/v1/executions/{id}/events?after=N` first; `onEvent` gets them all;
 * - it connects over a WebSocket, else Server-Sent Events, else long-poll
 *   (`transports`): a transport that cannot be opened or stays silent gives
 *   way to the next at once, resuming after the last event delivered;
 * - a `ping` every 25 s; no answer within 10 s counts as a lost connection;
 * - a lost connection is retried with exponential backoff and jitter (at once
 *   when the browser comes back online), resuming with `?last_seq=N`;
 * - a status whose result was cut (`result_truncated`: longer than the
 *   server's EXECUTIONS_EVENT_RESULT_LIMIT) is delivered with the whole result,
 *   read from `GET /api/v1/executions/{id}` first;
 * - it stops after the terminal status (completed, failed, cancelled), or for
 *   good on a refusal (close codes 4400, 4401, 4403, 4404; see `onFail`).
 *
 * In a browser the socket, the event stream and the REST calls use the session
 * cookie. Elsewhere pass `createSocket` (e.g. with an `Authorization: Bearer`
 * header) and `headers` for the HTTP requests.
 *
 * To follow many executions (or the list of executions) on one socket, see
 * ExecutionSocket in execution-socket.js.
 */

import { EVENT_CALLBACKS, EVENT_TYPES, EventSequence, TERMINAL_STATUSES } from "./execution-events.js";
import { CONNECTION_DEFAULTS, ReconnectingSocket, REFUSALS, withDefaults } from "./reconnecting-socket.js";
import { LongPollSocket } from "./transports.js";

export { TERMINAL_STATUSES };

const DEFAULTS = { ...CONNECTION_DEFAULTS, ...EVENT_CALLBACKS };

export class ExecutionStream extends ReconnectingSocket {
  /**
   * @param {string} executionId
   * @param {object} options  see DEFAULTS; every callback is optional.
   */
  constructor(executionId, options = {}) {
    super(withDefaults(DEFAULTS, options));
    this.executionId = executionId;
    this.ended = false;
    this._events = new EventSequence(executionId, this.options, {
      ended: (message) => this._end(message),
      broken: (error) => {
        console.warn("execution stream: reconnecting after", error);
        this._reconnect();
      },
    });
  }

  /** The seq of the last event delivered; null until the first one. */
  get lastSeq() {
    return this._events.lastSeq;
  }

  get finished() {
    return this.stopped || this.ended;
  }

  socketUrl() {
    const search = this.lastSeq === null ? "" : `?last_seq=${this.lastSeq}`;
    return this.websocketUrl(`/api/v1/ws/executions/${this.executionId}`, search);
  }

  eventStreamRequest() {
    const search = this.lastSeq === null ? "" : `?last_seq=${this.lastSeq}`;
    return { url: this.httpUrl(`/api/v1/executions/${this.executionId}/stream`, search) };
  }

  longPollSocket() {
    return new LongPollSocket(this.executionId, this.lastSeq ?? 0, this.options);
  }

  received(message) {
    if (message.type === "error") return this.options.onError(message);
    if (!EVENT_TYPES.has(message.type)) return; // a newer server's message: ignore
    this.connectionProven();
    this._events.enqueue(() => this._events.accept(message));
  }

  closed(event) {
    if (REFUSALS.has(event.code)) {
      this._fail(event.code, event.reason);
    } else if (event.code === 1000) {
      // The server has nothing more to send, yet no terminal status arrived
      // here: read the log to be sure, then try again if still not ended.
      this._events.enqueue(() => this._events.fill(Infinity)).then(() => this._scheduleReconnect());
    } else {
      this._scheduleReconnect();
    }
  }

  stateDetail() {
    return { lastSeq: this.lastSeq };
  }

  _end(message) {
    this.ended = true;
    this._teardown();
    this._setState("ended");
    this.options.onEnd(message);
  }
}
