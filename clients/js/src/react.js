/**
 * React bindings: hooks that render an execution, or the executions feed,
 * live. `react` is a peer dependency (18 or later).
 *
 *   const run = useExecution(executionId, { pauseWhenHidden: true });
 *   // run.status, run.progress, run.nodes, run.logs, run.chunks, run.connection.transport
 *
 * The connection opens when the component mounts (or the id, or the filter,
 * changes) and closes when it unmounts and after the run's terminal status.
 * The other options are read then; the callbacks among them are always the
 * latest render's.
 */

import { useEffect, useRef, useState } from "react";

import { ExecutionFeedState, ExecutionState } from "./live.js";

const CALLBACKS = ["onStatus", "onNode", "onLog", "onChunk", "onEvent", "onEnd", "onError", "onFail", "onStateChange", "onExecution"];

/** The options with each callback calling the latest render's. */
function withLatestCallbacks(options, latest) {
  const passed = { ...options };
  for (const name of CALLBACKS) {
    if (name in passed) passed[name] = (...args) => latest.current[name]?.(...args);
  }
  return passed;
}

function useLive(create, initial, key) {
  const [snapshot, setSnapshot] = useState(initial);
  useEffect(() => {
    const live = create();
    if (!live) return undefined;
    setSnapshot(live.snapshot);
    const unsubscribe = live.subscribe(setSnapshot);
    live.start();
    return () => {
      unsubscribe();
      live.close();
    };
  }, [key]);
  return snapshot;
}

/** One execution's live state (see ExecutionState in live.js); nothing while `executionId` is empty. */
export function useExecution(executionId, options = {}) {
  const latest = useRef(options);
  latest.current = options;
  return useLive(
    () => (executionId ? new ExecutionState(executionId, withLatestCallbacks(latest.current, latest)) : null),
    () => ExecutionState.initial(executionId ?? null, options.lastSeq),
    executionId,
  );
}

/** The executions feed's live state for `filter` ({workflow_id, status: [...], tag}), newest first. */
export function useExecutionFeed(filter = {}, options = {}) {
  const latest = useRef(options);
  latest.current = options;
  const key = JSON.stringify(filter ?? {});
  return useLive(
    () => new ExecutionFeedState(JSON.parse(key), withLatestCallbacks(latest.current, latest)),
    () => ExecutionFeedState.initial(),
    key,
  );
}
