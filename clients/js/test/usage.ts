// What a TypeScript caller writes, checked against types/ by `tsc --noEmit`;
// each @ts-expect-error is a mistake the declarations must catch.

import { ExecutionSocket, ExecutionStream, TRANSPORTS, watchExecution, type Transport } from "workflow-push";
import { useExecution as useReactExecution, useExecutionFeed as useReactFeed } from "workflow-push/react";
import { useExecution as useVueExecution, useExecutionFeed as useVueFeed } from "workflow-push/vue";
import { ref } from "vue";

const stream = new ExecutionStream("a1b2", {
  lastSeq: 0,
  transports: ["websocket", "sse"],
  onStatus: (m) => m.progress.toFixed(0),
  onNode: (m) => m.node_id.toUpperCase(),
  onChunk: (m) => (typeof m.data === "string" ? m.data : m.data.length),
  onEnd: (m) => m.status,
  onStateChange: (state, detail) => `${state} over ${detail.transport}`,
  onFail: ({ code }) => code + 1,
}).start();
const transport: Transport = stream.transport;
const seq: number | null = stream.lastSeq;
stream.stop();
// @ts-expect-error: not a transport
new ExecutionStream("a1b2", { transports: ["carrier-pigeon"] });
// @ts-expect-error: a log has no progress
new ExecutionStream("a1b2", { onLog: (m) => m.progress });

const socket = new ExecutionSocket({ onStateChange: (state) => state }).start();
const run = socket.subscribe("a1b2", { lastSeq: 3, onEnd: (m) => m.result });
const feed = socket.feed({ status: ["running"], tag: "nightly" }, { onExecution: (e) => e.last_seq });
const cursor: string | null = feed.cursor;
run.stop();
// @ts-expect-error: not a status
socket.feed({ status: ["sleeping"] });

const live = watchExecution("a1b2", { pauseWhenHidden: true, maxLogs: 100 });
const unsubscribe = live.subscribe((snapshot) => {
  const text: string | undefined = snapshot.chunks.write?.output;
  const over: Transport | null = snapshot.connection.transport;
  return [text, over, snapshot.logs[0]?.message, snapshot.nodes.fetch?.status];
});
unsubscribe();
live.close();

function reactView(id: string) {
  const run = useReactExecution(id, { pauseWhenHidden: true });
  const feed = useReactFeed({ workflow_id: "w1" });
  // @ts-expect-error: the snapshot is read-only
  run.logs.push(run.logs[0]);
  return [run.status, run.connection.state, feed.executions.map((e) => e.status)];
}

function vueSetup() {
  const id = ref("a1b2");
  const { status, logs, chunks, connection, close } = useVueExecution(id, { transports: TRANSPORTS.slice() });
  const byGetter = useVueExecution(() => id.value);
  const { executions } = useVueFeed(() => ({ status: ["failed" as const] }));
  close();
  const state: string = connection.value.state;
  return [status.value, logs.value.length, chunks.value, byGetter.ended.value, executions.value[0]?.id, state];
}

export { cursor, reactView, seq, transport, vueSetup };
