/**
 * The two transports that stand in for a WebSocket where one does not get
 * through (docs/protocol.md, "Server-Sent Events and long-poll"): an event
 * stream read with `fetch` (so that it can send headers and `Last-Event-ID`,
 * which `EventSource` cannot), and a long-poll of the events endpoint. Each
 * looks like a WebSocket to ReconnectingSocket: `onopen`, `onmessage({data})`,
 * `onclose({code, reason})`, `readyState`, `close()`, plus `onactivity()`
 * whenever the server is heard from (a heartbeat comment included).
 *
 * A close code says what happened, as a socket's would: 1000 the server had
 * nothing more to send; 4400, 4401, 4403, 4404 a refusal; 4429, 1011, 1013
 * the server asks to come back later; 1006 the server was not reached (a
 * network error, a proxy's own answer), which is when the next transport is
 * tried.
 */

// The close code the server gives to a refusal with this HTTP status (REST
// answers carry no code of their own).
const CODES_OF_STATUS = { 400: 4400, 401: 4401, 403: 4403, 404: 4404, 429: 4429, 503: 1013 };
const UNREACHED = 1006;

/** Parses `text/event-stream` text as it arrives; calls `dispatch({event, data, id})`
 * per event and `comment()` per comment line. */
export class EventStreamParser {
  constructor(dispatch, comment = () => {}) {
    this.dispatch = dispatch;
    this.comment = comment;
    this._buffer = "";
    this._event = { event: "message", data: [], id: null };
  }

  /** Feed the next piece of the body. */
  push(text) {
    this._buffer += text;
    const lines = this._buffer.split(/\r\n|\r|\n/);
    // The last piece may be a line still on its way (a lone "\r" too: "\n" may follow).
    this._buffer = lines.pop();
    if (this._buffer === "" && text.endsWith("\r")) this._buffer = "\r";
    for (const line of lines) this._line(line);
  }

  _line(line) {
    if (line === "") return this._flush();
    if (line.startsWith(":")) return this.comment(line.slice(1).trim());
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this._event.event = value;
    else if (field === "data") this._event.data.push(value);
    else if (field === "id") this._event.id = value;
  }

  _flush() {
    const { event, data, id } = this._event;
    this._event = { event: "message", data: [], id: null };
    if (data.length) this.dispatch({ event, data: data.join("\n"), id });
  }
}

/** A refusal's close code from an HTTP error answer; 1006 when no server of ours gave it. */
async function closeOfAnswer(response) {
  const body = await response.json().catch(() => null);
  const ours = body !== null && typeof body === "object" && "detail" in body;
  const code = ours ? (body.code ?? CODES_OF_STATUS[response.status] ?? 1011) : UNREACHED;
  return { code, reason: ours ? String(body.detail) : `answered ${response.status}`, ours };
}

class HttpTransport {
  constructor(options) {
    this.options = options;
    this.readyState = 0;
    this._abort = new AbortController();
    this.onopen = () => {};
    this.onmessage = () => {};
    this.onclose = () => {};
    this.onactivity = () => {};
  }

  /** Nothing is sent on these transports (the server stands in for the pings). */
  send() {}

  close() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this._abort.abort();
  }

  _get(url, headers, accept, signal = this._abort.signal) {
    return this.options.fetch(url, {
      headers: { Accept: accept, ...this.options.headers, ...headers },
      credentials: this.options.credentials,
      cache: "no-store",
      signal,
    });
  }

  _open() {
    this.readyState = 1;
    this.onopen({});
  }

  _end(code, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this._abort.abort();
    this.onclose({ code, reason });
  }
}

/**
 * One `text/event-stream` response (`GET /api/v1/executions/{id}/stream` or
 * `GET /api/v1/stream?...`), each event's data passed on as a message. The
 * response ending is a close with 1000, or with the code of the `error`
 * event that came before it (1011 when it had none).
 */
export class EventStreamSocket extends HttpTransport {
  /** @param {{url: string, headers?: object}} request  @param {object} options  fetch, headers, credentials */
  constructor(request, options) {
    super(options);
    this.url = request.url;
    this._closeCode = 1000;
    this._read(request).catch(() => this._end(UNREACHED));
  }

  async _read({ url, headers = {} }) {
    const response = await this._get(url, headers, "text/event-stream");
    if (!response.ok) {
      const { code, reason, ours } = await closeOfAnswer(response);
      if (ours) this.onactivity();
      return this._end(code, reason);
    }
    if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      return this._end(UNREACHED, "not an event stream"); // a proxy's page, say
    }
    this._open();
    const parser = new EventStreamParser(
      (event) => this._event(event),
      () => this.onactivity(),
    );
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (this.readyState === 3) return reader.cancel().catch(() => {});
      if (done) return this._end(this._closeCode);
      this.onactivity();
      parser.push(decoder.decode(value, { stream: true }));
    }
  }

  _event({ event, data }) {
    if (this.readyState === 3) return;
    if (event === "error") {
      let code = 1011;
      try {
        code = JSON.parse(data).code ?? code;
      } catch {}
      this._closeCode = code;
    }
    this.onmessage({ data });
  }
}

/**
 * Long-poll of one execution: `GET /api/v1/executions/{id}/events?after=N&wait=S`
 * in a loop, `after` the last seq received, each page's events passed on as
 * messages. It is open once the first answer came; a request that has no
 * answer `waitS` seconds plus `graceMs` after it was sent closes it (1006
 * when none ever came: the server is not reached this way).
 */
export class LongPollSocket extends HttpTransport {
  /**
   * @param {string} executionId
   * @param {number} after  the last seq the owner has
   * @param {object} options  baseUrl, fetch, headers, credentials, pollWaitS, pollGraceMs, pollIntervalMs
   */
  constructor(executionId, after, options) {
    super(options);
    this.executionId = executionId;
    this.after = after;
    this._loop().catch(() => this._end(UNREACHED));
  }

  eventsUrl() {
    const url = new URL(`/api/v1/executions/${this.executionId}/events`, this.options.baseUrl);
    url.search = `?after=${this.after}&limit=1000&wait=${this.options.pollWaitS}`;
    return url.toString();
  }

  async _loop() {
    while (this.readyState !== 3) {
      const started = Date.now();
      const page = await this._poll();
      if (page === null) return;
      if (this.readyState === 0) this._open();
      this.onactivity();
      for (const message of page.results) {
        if (this.readyState === 3) return;
        if (Number.isInteger(message.seq) && message.seq > this.after) this.after = message.seq;
        this.onmessage({ data: message });
      }
      if (!page.next && !page.results.length) await this._pause(started);
    }
  }

  /** One request's page; null once closed (by the owner, a refusal, or silence). */
  async _poll() {
    const { pollWaitS, pollGraceMs } = this.options;
    const timedOut = new AbortController();
    const timer = setTimeout(() => timedOut.abort(), pollWaitS * 1000 + pollGraceMs);
    const stop = () => timedOut.abort();
    this._abort.signal.addEventListener("abort", stop);
    try {
      const response = await this._get(this.eventsUrl(), {}, "application/json", timedOut.signal);
      if (!response.ok) {
        const { code, reason, ours } = await closeOfAnswer(response);
        if (ours) this.onactivity();
        this._end(code, reason);
        return null;
      }
      return await response.json();
    } catch {
      this._end(UNREACHED, "no answer");
      return null;
    } finally {
      clearTimeout(timer);
      this._abort.signal.removeEventListener("abort", stop);
    }
  }

  /** Empty answers at least `pollIntervalMs` apart (a server that answers at once is not
   * asked in a tight loop). */
  _pause(started) {
    const rest = this.options.pollIntervalMs - (Date.now() - started);
    return rest > 0 ? new Promise((resolve) => setTimeout(resolve, rest)) : Promise.resolve();
  }
}
