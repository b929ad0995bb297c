/**
 * workflow-push: follow workflow executions live (docs/protocol.md). Plain ES
 * modules with no dependencies; the Vue 3 and React bindings are
 * `workflow-push/vue` and `workflow-push/react`.
 */

export { ExecutionStream, TERMINAL_STATUSES } from "./execution-stream.js";
export { ExecutionSocket } from "./execution-socket.js";
export { CONNECTION_DEFAULTS, REFUSALS, TRANSPORTS, backoffDelay } from "./reconnecting-socket.js";
export { EventStreamParser } from "./transports.js";
export { chunkText, ExecutionFeedState, ExecutionState, watchExecution, watchExecutionFeed } from "./live.js";
