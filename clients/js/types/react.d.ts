// Type declarations of workflow-push/react (src/react.js).

import type { ExecutionSnapshot, FeedFilter, FeedSnapshot, LiveExecutionOptions, LiveFeedOptions } from "./index.js";

export type { ExecutionSnapshot, FeedSnapshot } from "./index.js";

/** One execution's live state; the connection closes on unmount and after the terminal status. */
export function useExecution(executionId: string | null | undefined, options?: LiveExecutionOptions): ExecutionSnapshot;

/** The executions feed's live state for `filter`, newest first. */
export function useExecutionFeed(filter?: FeedFilter, options?: LiveFeedOptions): FeedSnapshot;
