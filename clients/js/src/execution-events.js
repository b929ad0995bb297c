/**
 * EventSequence: one execution's events delivered exactly once, in `seq` order,
 * whatever socket they come from. ExecutionStream has one; ExecutionSocket has
 * one per subscription.
 *
 * - duplicates (a `seq` delivered already) are dropped;
 * - a gap is filled from `GET /api/v1/executions/{id}/events?after=N` first;
 * - a status whose result was cut (`result_truncated`) is delivered with the
 *   whole result, read from `GET /api/v1/executions/{id}` first;
 * - the terminal status (completed, failed, cancelled) ends the sequence.
 *
 * Steps run one at a time (`enqueue`); a step that fails (the REST API could
 * not be read) calls `broken`, and the owner resumes from `lastSeq`.
 */

export const TERMINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);
export const EVENT_TYPES = new Set(["status", "node", "log", "chunk"]);

// What a follower of one execution's events is told, by default nothing.
export const EVENT_CALLBACKS = {
  lastSeq: null,
  onStatus() {},
  onNode() {},
  onLog() {},
  onChunk() {},
  onEvent() {},
  onEnd() {},
};
const HANDLERS = { status: "onStatus", node: "onNode", log: "onLog", chunk: "onChunk" };

export class EventSequence {
  /**
   * @param {string} executionId
   * @param {object} options  `lastSeq` (null: the first message is a snapshot),
   *   `baseUrl`, `headers`, `fetch`, and the callbacks onStatus, onNode, onLog, onChunk, onEvent.
   * @param {object} owner  `ended(message)` after the terminal status is delivered,
   *   `broken(error)` when a step failed.
   */
  constructor(executionId, options, owner) {
    this.executionId = executionId;
    this.options = options;
    this.owner = owner;
    /** The seq of the last event delivered; null until the first one. */
    this.lastSeq = options.lastSeq ?? null;
    this.ended = false;
    this._queue = Promise.resolve();
  }

  /** Deliver nothing more, and read nothing more from the REST API. */
  halt() {
    this.ended = true;
  }

  /** Run `step` after every earlier one, so that events are handled one at a time. */
  enqueue(step) {
    this._queue = this._queue.then(step).catch((error) => this.owner.broken(error));
    return this._queue;
  }

  /** Deliver `message` if it is the next event, after filling any gap before it. Events
   * queued from a socket that has since closed still count: seq alone decides. */
  async accept(message) {
    if (this.ended) return;
    if (this.lastSeq === null) return this._deliver(message); // the snapshot
    if (message.seq <= this.lastSeq) return; // seen already
    if (message.seq > this.lastSeq + 1) await this.fill(message.seq - 1);
    if (!this.ended && message.seq === this.lastSeq + 1) await this._deliver(message);
  }

  /** Deliver the stored events after lastSeq, up to `upto`, from the REST API. */
  async fill(upto) {
    let url = this._eventsUrl();
    while (url && !this.ended && this.lastSeq < upto) {
      const page = await this._get(url);
      for (const event of page.results) {
        if (this.ended || event.seq > upto) return;
        if (event.seq === this.lastSeq + 1) await this._deliver(event);
      }
      url = page.next;
    }
  }

  _eventsUrl() {
    const url = new URL(`/api/v1/executions/${this.executionId}/events`, this.options.baseUrl);
    url.search = `?after=${this.lastSeq ?? 0}&limit=1000`;
    return url.toString();
  }

  async _get(url) {
    const response = await this.options.fetch(url, {
      headers: { Accept: "application/json", ...this.options.headers },
      credentials: this.options.credentials ?? "same-origin",
    });
    if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
    return response.json();
  }

  /** A status whose result was cut (`result_truncated`), with the whole result
   * from `GET /api/v1/executions/{id}`; the markers are dropped. */
  async _withWholeResult(message) {
    const url = new URL(`/api/v1/executions/${this.executionId}`, this.options.baseUrl).toString();
    const { result } = await this._get(url);
    const { result_truncated, result_size, ...rest } = message;
    return { ...rest, result };
  }

  async _deliver(message) {
    if (message.type === "status" && message.result_truncated) {
      message = await this._withWholeResult(message);
      if (this.ended) return; // halted meanwhile
    }
    this.lastSeq = message.seq;
    const handler = HANDLERS[message.type];
    // A type newer than this client (read from the events endpoint) only takes its seq.
    if (!handler) return;
    this.options[handler](message);
    this.options.onEvent(message);
    if (message.type === "status" && TERMINAL_STATUSES.has(message.status)) {
      this.ended = true;
      this.owner.ended(message);
    }
  }
}
