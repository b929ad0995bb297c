/**
 * The live state of one execution (ExecutionState) or of the executions feed
 * (ExecutionFeedState) as plain, immutable snapshots: what the Vue and React
 * bindings (vue.js, react.js) render, and what any other view can subscribe to.
 *
 *   const live = watchExecution(executionId, { pauseWhenHidden: true });
 *   const unsubscribe = live.subscribe((snapshot) => render(snapshot));
 *   // snapshot.status, .nodes, .logs, .chunks, .connection.transport, …
 *   live.close();
 *
 * Each change makes a new snapshot object; the parts that did not change are
 * the same objects as before (so `===` tells what changed). The connection
 * closes after the terminal status, on `close()`, and, with `pauseWhenHidden`,
 * while `document.hidden`: it connects again on `visibilitychange`, from the
 * last event it has (the feed from its cursor), so nothing is missed or twice.
 */

import { ExecutionSocket } from "./execution-socket.js";
import { ExecutionStream } from "./execution-stream.js";

const LIVE_DEFAULTS = {
  // Replay every stored event, so that the logs, nodes and streamed output are whole.
  lastSeq: 0,
  pauseWhenHidden: false,
  // The newest log lines kept, and the last characters of each node's stream.
  maxLogs: 1000,
  maxChunkChars: 200000,
  // The executions a feed keeps, newest first.
  maxExecutions: 500,
};
const LIVE_OPTIONS = Object.keys(LIVE_DEFAULTS);

/** A chunk's data as text: a text stream's as it is, a JSON stream's pieces a line each. */
export function chunkText(data) {
  return Array.isArray(data) ? data.map((piece) => `${JSON.stringify(piece)}\n`).join("") : String(data);
}

function clientOptions(options) {
  const passed = { ...options };
  for (const name of LIVE_OPTIONS) delete passed[name];
  return passed;
}

class LiveState {
  constructor(options) {
    this.options = { ...LIVE_DEFAULTS, ...options };
    this.client = null;
    this.closed = false;
    this._listeners = new Set();
    this._visibility = () => this._visibilityChanged();
  }

  /** Call `listener(snapshot)` after each change; returns the function that stops it. */
  subscribe(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  getSnapshot() {
    return this.snapshot;
  }

  /** Connect (unless paused while hidden). Called once. */
  start() {
    if (this.options.pauseWhenHidden && typeof document !== "undefined") {
      document.addEventListener("visibilitychange", this._visibility);
      if (document.hidden) {
        this._update({ connection: { ...this.snapshot.connection, state: "paused" } });
        return this;
      }
    }
    this._connect();
    return this;
  }

  /** Close the connection for good. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this._forgetVisibility();
    this._stopClient();
  }

  /** Close the current client (for good, or until the page is visible again). */
  _stopClient() {
    const client = this.client;
    this.client = null;
    client?.stop();
  }

  _visibilityChanged() {
    if (this.closed) return;
    if (document.hidden && this.client) {
      this._stopClient();
      this._update({ connection: { ...this.snapshot.connection, state: "paused" } });
    } else if (!document.hidden && !this.client) {
      this._connect();
    }
  }

  _forgetVisibility() {
    if (typeof document !== "undefined") document.removeEventListener("visibilitychange", this._visibility);
  }

  _connectionChanged(client, state, detail) {
    if (client !== this.client) return; // a client paused or closed since
    const { transport, reconnects, code = null, reason = null, delay = null } = detail;
    this._update({ connection: { state, transport, reconnects, code, reason, delay } });
  }

  _update(changes) {
    this.snapshot = { ...this.snapshot, ...changes };
    for (const listener of [...this._listeners]) listener(this.snapshot);
  }
}

/** One execution's live state; `start()` connects. */
export class ExecutionState extends LiveState {
  /** The snapshot before any event. */
  static initial(executionId, lastSeq = LIVE_DEFAULTS.lastSeq) {
    return {
      executionId,
      status: null,
      progress: 0,
      message: "",
      result: null,
      error: null,
      executionTime: null,
      nodes: {},
      logs: [],
      chunks: {},
      lastSeq,
      ended: false,
      connection: { state: "idle", transport: null, reconnects: 0, code: null, reason: null, delay: null },
    };
  }

  constructor(executionId, options = {}) {
    super(options);
    this.executionId = executionId;
    this.snapshot = ExecutionState.initial(executionId, this.options.lastSeq);
  }

  _connect() {
    const passed = clientOptions(this.options);
    const client = new ExecutionStream(this.executionId, {
      ...passed,
      lastSeq: this.snapshot.lastSeq,
      onEvent: (message) => {
        this._apply(message);
        passed.onEvent?.(message);
      },
      onEnd: (message) => {
        this._ended();
        passed.onEnd?.(message);
      },
      onStateChange: (state, detail) => {
        this._connectionChanged(client, state, detail);
        passed.onStateChange?.(state, detail);
      },
    });
    this.client = client;
    client.start();
  }

  _ended() {
    this._forgetVisibility();
    this._update({ ended: true });
  }

  _apply(message) {
    const changes = { lastSeq: message.seq };
    if (message.type === "status") Object.assign(changes, statusFields(message));
    else if (message.type === "node") this._node(message, changes);
    else if (message.type === "log") changes.logs = this._log(message);
    else if (message.type === "chunk") changes.chunks = this._chunk(message);
    this._update(changes);
  }

  _node(message, changes) {
    const { node_id: nodeId, execution_id, seq, timestamp, type, ...fields } = message;
    const known = this.snapshot.nodes[nodeId];
    // A node's next attempt starts its streamed output afresh (as its REST detail does).
    if (fields.status === "running" && this.snapshot.chunks[nodeId]) {
      changes.chunks = { ...this.snapshot.chunks, [nodeId]: {} };
    }
    const node = { ...known, node_id: nodeId, ...fields };
    if (fields.status === "running") {
      delete node.output;
      delete node.error;
      delete node.duration;
    }
    changes.nodes = { ...this.snapshot.nodes, [nodeId]: node };
  }

  _log(message) {
    const { seq, level, node_id, message: text, timestamp } = message;
    const logs = [...this.snapshot.logs, { seq, level, node_id, message: text, timestamp }];
    return logs.length > this.options.maxLogs ? logs.slice(-this.options.maxLogs) : logs;
  }

  _chunk(message) {
    const nodeId = message.node_id;
    const streams = this.snapshot.chunks[nodeId] ?? {};
    let text = (streams[message.stream] ?? "") + chunkText(message.data);
    if (text.length > this.options.maxChunkChars) text = text.slice(-this.options.maxChunkChars);
    return { ...this.snapshot.chunks, [nodeId]: { ...streams, [message.stream]: text } };
  }
}

function statusFields(message) {
  return {
    status: message.status,
    progress: message.progress,
    message: message.message,
    result: message.result,
    error: message.error,
    executionTime: message.execution_time,
  };
}

/** The executions feed's live state, newest first; `start()` connects. */
export class ExecutionFeedState extends LiveState {
  static initial() {
    return {
      executions: [],
      // Where the feed resumes after a pause (the cursor when it paused).
      cursor: null,
      connection: { state: "idle", transport: null, reconnects: 0, code: null, reason: null, delay: null },
      failed: null,
    };
  }

  /** @param {object} filter  {workflow_id, status: [...], tag}; empty fields mean "any". */
  constructor(filter = {}, options = {}) {
    super(options);
    this.filter = { ...filter };
    this.snapshot = ExecutionFeedState.initial();
    this._states = new Map();
    this._feed = null;
  }

  _connect() {
    const passed = clientOptions(this.options);
    const client = new ExecutionSocket({
      ...passed,
      onStateChange: (state, detail) => {
        this._connectionChanged(client, state, detail);
        passed.onStateChange?.(state, detail);
      },
    });
    this.client = client;
    client.start();
    this._feed = client.feed(this.filter, {
      cursor: this.snapshot.cursor,
      onExecution: (execution) => {
        this._execution(execution);
        passed.onExecution?.(execution);
      },
      onFail: (detail) => {
        this._update({ failed: detail });
        passed.onFail?.(detail);
      },
    });
  }

  /** Keeps the feed's cursor, so that connecting again resumes from it. */
  _stopClient() {
    if (this._feed) this.snapshot = { ...this.snapshot, cursor: this._feed.cursor };
    this._feed = null;
    super._stopClient();
  }

  _execution(execution) {
    const known = this._states.get(execution.id);
    if (known && execution.last_seq <= known.last_seq) return;
    const statuses = this.filter.status ?? [];
    if (statuses.length && !statuses.includes(execution.status)) this._states.delete(execution.id);
    else this._states.set(execution.id, execution);
    const executions = [...this._states.values()].sort(newestFirst).slice(0, this.options.maxExecutions);
    if (executions.length < this._states.size) {
      this._states = new Map(executions.map((state) => [state.id, state]));
    }
    this._update({ executions });
  }
}

function newestFirst(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

/** An ExecutionState for `executionId`, started. */
export function watchExecution(executionId, options = {}) {
  return new ExecutionState(executionId, options).start();
}

/** An ExecutionFeedState for `filter`, started. */
export function watchExecutionFeed(filter = {}, options = {}) {
  return new ExecutionFeedState(filter, options).start();
}
