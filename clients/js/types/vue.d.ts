// Type declarations of workflow-push/vue (src/vue.js).

import type { ComputedRef, MaybeRefOrGetter, ShallowRef } from "vue";

import type { ExecutionSnapshot, FeedFilter, FeedSnapshot, LiveExecutionOptions, LiveFeedOptions } from "./index.js";

export type { ExecutionSnapshot, FeedSnapshot } from "./index.js";

/** Each field of `Snapshot` as a read-only ref, the whole snapshot, and `close()`. */
export type LiveRefs<Snapshot> = { readonly [K in keyof Snapshot]: ComputedRef<Snapshot[K]> } & {
  readonly snapshot: Readonly<ShallowRef<Snapshot>>;
  close(): void;
};

/** One execution's live state as refs; it follows the id when it changes, and closes
 * when the component's scope is disposed and after the terminal status. */
export function useExecution(
  executionId: MaybeRefOrGetter<string | null | undefined>,
  options?: LiveExecutionOptions,
): LiveRefs<ExecutionSnapshot>;

/** The executions feed's live state for `filter` as refs, newest first. */
export function useExecutionFeed(
  filter?: MaybeRefOrGetter<FeedFilter>,
  options?: LiveFeedOptions,
): LiveRefs<FeedSnapshot>;
