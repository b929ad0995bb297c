/**
 * Vue 3 bindings: composables that follow an execution, or the executions
 * feed, live. `vue` is a peer dependency (3.3 or later).
 *
 *   const { status, progress, nodes, logs, chunks, connection } = useExecution(
 *     () => props.executionId, { pauseWhenHidden: true });
 *
 * Each field is a read-only ref. The id (and the filter) may be a value, a
 * ref or a getter: when it changes the connection is opened again for the
 * new one. It closes when the component's scope is disposed (unmounted), and
 * after the run's terminal status; `close()` closes it earlier.
 */

import { computed, getCurrentScope, onScopeDispose, shallowRef, toValue, watch } from "vue";

import { ExecutionFeedState, ExecutionState } from "./live.js";

const EXECUTION_FIELDS = Object.keys(ExecutionState.initial(null));
const FEED_FIELDS = Object.keys(ExecutionFeedState.initial());

function useLive(source, create, initial, fields) {
  const snapshot = shallowRef(initial(toValue(source)));
  let live = null;
  const close = () => {
    live?.close();
    live = null;
  };
  const stop = watch(
    () => (typeof toValue(source) === "object" ? JSON.stringify(toValue(source)) : toValue(source)),
    () => {
      close();
      const value = toValue(source);
      snapshot.value = initial(value);
      live = create(value);
      if (!live) return;
      live.subscribe((next) => {
        snapshot.value = next;
      });
      live.start();
    },
    { immediate: true },
  );
  if (getCurrentScope()) {
    onScopeDispose(() => {
      stop();
      close();
    });
  }
  const refs = Object.fromEntries(fields.map((name) => [name, computed(() => snapshot.value[name])]));
  return { ...refs, snapshot, close };
}

/** One execution's live state as refs (see ExecutionState in live.js); nothing while the id is empty. */
export function useExecution(executionId, options = {}) {
  return useLive(
    executionId,
    (id) => (id ? new ExecutionState(id, options) : null),
    (id) => ExecutionState.initial(id ?? null, options.lastSeq),
    EXECUTION_FIELDS,
  );
}

/** The executions feed's live state for `filter` ({workflow_id, status: [...], tag}) as refs, newest first. */
export function useExecutionFeed(filter = {}, options = {}) {
  return useLive(
    filter,
    (value) => new ExecutionFeedState({ ...(value ?? {}) }, options),
    () => ExecutionFeedState.initial(),
    FEED_FIELDS,
  );
}
