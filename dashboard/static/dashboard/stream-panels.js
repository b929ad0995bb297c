// The execution page's streamed output: a text panel per node and stream, filled
// from `chunk` events and keeping to its tail as the log pane does.

import { format, gettext, language } from "./i18n.js";
import { h } from "./ui.js";

/** Characters a panel keeps (the newest): a long stream cannot freeze the tab. */
export const PANEL_CHARS = 200_000;
// As the log pane: this close to the bottom, a panel follows its tail.
const NEAR_BOTTOM = 24;

/** A chunk's data as panel text: a text stream's as it is, a JSON stream's pieces a line each. */
function panelText(data) {
  return Array.isArray(data) ? data.map((piece) => `${JSON.stringify(piece)}\n`).join("") : String(data);
}

class StreamPanel {
  constructor(nodeId, stream) {
    // One text node, grown and cut in place: never markup, and no copy of the whole text per chunk.
    this.text = document.createTextNode("");
    this.body = h("pre", { class: "stream-text", tabindex: "0" }, this.text);
    this.dropped = h(
      "p",
      { class: "muted stream-dropped", hidden: true },
      format(gettext("Earlier output was dropped: only the last %(count)s characters are kept."), {
        count: PANEL_CHARS.toLocaleString(language),
      }),
    );
    this.element = h(
      "section",
      { class: "stream-panel", "data-node-id": nodeId, "data-stream": stream },
      h("h3", { class: "stream-title" }, `${nodeId} · ${stream}`),
      this.dropped,
      this.body,
    );
    this.following = true;
    this._frame = null;
    this._scrolledTo = null;
    // Scrolling up to read stops following the tail; scrolling back down resumes it.
    this.body.addEventListener("scroll", () => {
      if (this.body.scrollTop === this._scrolledTo) return; // the panel's own scroll to the tail
      this.following = this.body.scrollHeight - this.body.scrollTop - this.body.clientHeight < NEAR_BOTTOM;
    });
  }

  append(data) {
    this.text.appendData(panelText(data));
    let excess = this.text.length - PANEL_CHARS;
    if (excess > 0) {
      const code = this.text.data.charCodeAt(excess);
      if (code >= 0xdc00 && code <= 0xdfff) excess += 1; // not half a surrogate pair
      this.text.deleteData(0, excess);
      this.dropped.hidden = false;
    }
    this._followTail();
  }

  clear() {
    this.text.data = "";
    this.dropped.hidden = true;
  }

  /** Scroll to the end once per frame at most: a burst of chunks lays the text out once. */
  _followTail() {
    if (!this.following || this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = null;
      if (!this.following) return;
      this.body.scrollTop = this.body.scrollHeight;
      this._scrolledTo = this.body.scrollTop;
    });
  }
}

export class StreamPanels {
  /** @param {HTMLElement} card  shown with its first panel; holds `.stream-panels` and `.streams-cut`. */
  constructor(card) {
    this.card = card;
    this.list = card.querySelector(".stream-panels");
    this.cut = card.querySelector(".streams-cut");
    /** node_id -> stream name -> StreamPanel */
    this.nodes = new Map();
  }

  /** Called with the nodes of `GET /api/v1/executions/{id}`: each one's `streams` so far. */
  fill(nodes) {
    for (const node of nodes) {
      for (const [stream, data] of Object.entries(node.streams ?? {})) this._panel(node.node_id, stream).append(data);
    }
  }

  /** Called with each `chunk` event. */
  chunk(message) {
    this._panel(message.node_id, message.stream).append(message.data);
    if (message.stream_truncated) this.cut.hidden = false;
  }

  /** Called with each `node` event: an attempt that starts starts its node's streams again. */
  node(message) {
    if (message.status !== "running") return;
    for (const panel of this.nodes.get(message.node_id)?.values() ?? []) panel.clear();
  }

  _panel(nodeId, stream) {
    if (!this.nodes.has(nodeId)) this.nodes.set(nodeId, new Map());
    const streams = this.nodes.get(nodeId);
    if (!streams.has(stream)) {
      const panel = new StreamPanel(nodeId, stream);
      streams.set(stream, panel);
      this.list.append(panel.element);
      this.card.hidden = false;
    }
    return streams.get(stream);
  }
}
