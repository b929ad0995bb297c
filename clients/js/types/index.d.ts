// Type declarations of workflow-push (src/index.js); checked by `npm run check-types`.

export type Transport = "websocket" | "sse" | "long-poll";
export type ExecutionStatus = "pending" | "running" | "completed" | "failed" | "cancelled";
export type NodeStatus = "running" | "completed" | "failed" | "skipped" | "cancelled";
export type ConnectionState = "idle" | "connecting" | "live" | "reconnecting" | "ended" | "failed" | "stopped";

interface EventBase {
  execution_id: string;
  /** The event's position in the execution's log: 1, 2, 3, … with no gaps. */
  seq: number;
  /** When it was recorded, ISO 8601 UTC. */
  timestamp: string;
}

export interface StatusMessage extends EventBase {
  type: "status";
  status: ExecutionStatus;
  progress: number;
  message: string;
  result: unknown;
  error: string | null;
  execution_time: number | null;
  message_truncated?: boolean;
  message_size?: number;
  error_truncated?: boolean;
  error_size?: number;
}

export interface NodeMessage extends EventBase {
  type: "node";
  node_id: string;
  node_type: string;
  status: NodeStatus;
  attempt: number;
  output?: unknown;
  output_truncated?: boolean;
  error?: string;
  error_truncated?: boolean;
  error_size?: number;
  duration?: number;
}

export interface LogMessage extends EventBase {
  type: "log";
  node_id: string | null;
  level: string;
  message: string;
  message_truncated?: boolean;
  message_size?: number;
}

export interface ChunkMessage extends EventBase {
  type: "chunk";
  node_id: string;
  stream: string;
  /** A text stream's piece, or a JSON stream's values. */
  data: string | unknown[];
  attempt: number;
}

export type ExecutionEvent = StatusMessage | NodeMessage | LogMessage | ChunkMessage;

export interface ErrorMessage {
  type: "error";
  message: string;
  code?: number;
  execution_id?: string;
}

export interface Refusal {
  code: number;
  reason: string;
}

export interface StateDetail {
  transport: Transport;
  reconnects: number;
  /** The delay before the next attempt, when reconnecting. */
  delay?: number;
  /** The refusal's close code and reason, when failed. */
  code?: number;
  reason?: string;
  /** The last seq delivered (ExecutionStream). */
  lastSeq?: number | null;
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export interface ConnectionOptions {
  /** The server's origin; in a browser the page's. */
  baseUrl?: string;
  /** The transports to use, in order of preference (all three by default). */
  transports?: Transport[];
  heartbeatMs?: number;
  pongTimeoutMs?: number;
  probeMs?: number;
  openTimeoutMs?: number;
  sseSilenceMs?: number;
  pollWaitS?: number;
  pollGraceMs?: number;
  pollIntervalMs?: number;
  backoff?: Partial<Backoff>;
  /** Headers of every HTTP request (the event stream, long-polls, the REST reads). */
  headers?: Record<string, string>;
  credentials?: RequestCredentials;
  random?: () => number;
  createSocket?: (url: string) => SocketLike | WebSocket;
  fetch?: typeof fetch;
  onPong?: (message: { type: "pong" }) => void;
  onError?: (message: ErrorMessage) => void;
  onFail?: (refusal: Refusal) => void;
  onStateChange?: (state: ConnectionState, detail: StateDetail) => void;
}

export interface EventCallbacks {
  /** Replay after this seq (0: every event); null or left out: a snapshot first. */
  lastSeq?: number | null;
  onStatus?: (message: StatusMessage) => void;
  onNode?: (message: NodeMessage) => void;
  onLog?: (message: LogMessage) => void;
  onChunk?: (message: ChunkMessage) => void;
  onEvent?: (message: ExecutionEvent) => void;
  /** The terminal status; nothing follows it. */
  onEnd?: (message: StatusMessage) => void;
}

export interface ExecutionStreamOptions extends ConnectionOptions, EventCallbacks {}

export const TERMINAL_STATUSES: ReadonlySet<string>;
export const REFUSALS: ReadonlySet<number>;
export const TRANSPORTS: readonly Transport[];
export const CONNECTION_DEFAULTS: Required<Omit<ConnectionOptions, "backoff">> & { backoff: Backoff };
export function backoffDelay(backoff: Backoff, attempt: number, random: () => number): number;

declare class ReconnectingSocket {
  readonly state: ConnectionState;
  readonly stopped: boolean;
  readonly reconnects: number;
  /** The transport of the current (or next) connection. */
  readonly transport: Transport;
  readonly finished: boolean;
  readonly isOpen: boolean;
  start(): this;
  stop(): void;
  backoffDelay(attempt: number): number;
}

/** One execution, every event once and in seq order. */
export class ExecutionStream extends ReconnectingSocket {
  constructor(executionId: string, options?: ExecutionStreamOptions);
  readonly executionId: string;
  readonly ended: boolean;
  /** The seq of the last event delivered; null until the first. */
  readonly lastSeq: number | null;
}

export interface SubscriptionOptions extends EventCallbacks {
  onError?: (message: ErrorMessage) => void;
  onFail?: (refusal: Refusal) => void;
}

export interface Subscription {
  readonly executionId: string;
  readonly state: "subscribed" | "ended" | "failed" | "stopped";
  readonly active: boolean;
  readonly lastSeq: number | null;
  stop(): void;
}

export interface FeedFilter {
  workflow_id?: string | null;
  status?: ExecutionStatus[] | null;
  tag?: string | null;
}

export interface ExecutionSummary {
  id: string;
  workflow_id: string;
  workflow_name: string;
  status: ExecutionStatus;
  progress: number;
  message: string;
  execution_time: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  tags: string[];
  last_seq: number;
}

export interface FeedOptions {
  /** Resume from this cursor (the `cursor` of a feed followed before). */
  cursor?: string | null;
  onExecution?: (execution: ExecutionSummary) => void;
  onError?: (message: ErrorMessage) => void;
  onFail?: (refusal: Refusal) => void;
}

export interface Feed {
  readonly filter: FeedFilter;
  readonly cursor: string | null;
  readonly states: ReadonlyMap<string, ExecutionSummary>;
  readonly state: "subscribed" | "failed" | "stopped";
  readonly active: boolean;
  stop(): void;
}

export interface ExecutionSocketOptions extends ConnectionOptions {
  subscribesPerSecond?: number;
  restreamMs?: number;
}

/** Many executions and the executions feed on one connection. */
export class ExecutionSocket extends ReconnectingSocket {
  constructor(options?: ExecutionSocketOptions);
  readonly subscriptions: ReadonlyMap<string, Subscription>;
  subscribe(executionId: string, options?: SubscriptionOptions): Subscription;
  unsubscribe(executionId: string): void;
  feed(filter: FeedFilter, options?: FeedOptions): Feed;
}

export interface ServerSentEvent {
  event: string;
  data: string;
  id: string | null;
}

export class EventStreamParser {
  constructor(dispatch: (event: ServerSentEvent) => void, comment?: (text: string) => void);
  push(text: string): void;
}

// Live state (src/live.js), what the Vue and React bindings render.

export type LiveConnectionState = ConnectionState | "paused";

export interface LiveConnection {
  state: LiveConnectionState;
  transport: Transport | null;
  reconnects: number;
  code: number | null;
  reason: string | null;
  delay: number | null;
}

export interface NodeState {
  node_id: string;
  node_type?: string;
  status: NodeStatus;
  attempt?: number;
  output?: unknown;
  error?: string;
  duration?: number;
}

export interface LogLine {
  seq: number;
  level: string;
  node_id: string | null;
  message: string;
  timestamp: string;
}

export interface ExecutionSnapshot {
  executionId: string | null;
  status: ExecutionStatus | null;
  progress: number;
  message: string;
  result: unknown;
  error: string | null;
  executionTime: number | null;
  /** Each node's latest attempt, by node id. */
  nodes: Readonly<Record<string, NodeState>>;
  /** The newest `maxLogs` log lines, oldest first. */
  logs: readonly LogLine[];
  /** Each node's streamed output as text, by node id, then stream. */
  chunks: Readonly<Record<string, Readonly<Record<string, string>>>>;
  lastSeq: number | null;
  ended: boolean;
  connection: LiveConnection;
}

export interface FeedSnapshot {
  /** Newest first (by created_at), at most `maxExecutions`. */
  executions: readonly ExecutionSummary[];
  cursor: string | null;
  connection: LiveConnection;
  failed: Refusal | null;
}

export interface LiveOptions {
  /** Close while `document.hidden`; connect again, from where it was, when visible. */
  pauseWhenHidden?: boolean;
  maxLogs?: number;
  maxChunkChars?: number;
  maxExecutions?: number;
}

export interface LiveExecutionOptions extends ExecutionStreamOptions, LiveOptions {}
export interface LiveFeedOptions extends ExecutionSocketOptions, LiveOptions, Omit<FeedOptions, "cursor"> {}

declare class LiveState<Snapshot> {
  readonly snapshot: Snapshot;
  readonly closed: boolean;
  subscribe(listener: (snapshot: Snapshot) => void): () => void;
  getSnapshot(): Snapshot;
  start(): this;
  close(): void;
}

export class ExecutionState extends LiveState<ExecutionSnapshot> {
  static initial(executionId: string | null, lastSeq?: number | null): ExecutionSnapshot;
  constructor(executionId: string, options?: LiveExecutionOptions);
  readonly executionId: string;
  readonly client: ExecutionStream | null;
}

export class ExecutionFeedState extends LiveState<FeedSnapshot> {
  static initial(): FeedSnapshot;
  constructor(filter?: FeedFilter, options?: LiveFeedOptions);
  readonly filter: FeedFilter;
  readonly client: ExecutionSocket | null;
}

export function watchExecution(executionId: string, options?: LiveExecutionOptions): ExecutionState;
export function watchExecutionFeed(filter?: FeedFilter, options?: LiveFeedOptions): ExecutionFeedState;
export function chunkText(data: string | unknown[]): string;
