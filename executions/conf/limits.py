"""The bounds of what one execution, one node and one expression may record or use."""

from executions.env import integer, number, seconds, text_list

SETTINGS = [
    integer(
        "EXECUTIONS_MAX_ACTIVE_PER_USER",
        "1000",
        (
            "executions one user (staff too) may have pending or running at once; one more (or a "
            "batch that would pass it) is refused with 429 (0: no limit)"
        ),
        minimum=0,
    ),
    integer(
        "EXECUTIONS_MAX_PARALLEL_NODES",
        "4",
        "nodes of one execution that run at the same time",
        minimum=1,
    ),
    number(
        "EXECUTIONS_PROGRESS_EVENTS_PER_SECOND",
        "5",
        "progress-only status events recorded per execution per second, at most",
        above=0,
    ),
    number(
        "EXECUTIONS_PROGRESS_EVENTS_PER_SECOND_TOTAL",
        "100",
        (
            "the same, for all the executions of one process together: under load each "
            "execution's progress moves in coarser steps, and transitions are not kept waiting "
            "behind progress writes"
        ),
        above=0,
    ),
    integer(
        "EXECUTIONS_EVENT_OUTPUT_LIMIT",
        "2048",
        "characters of a node's output (as JSON) sent in its `node` event",
        unit="characters",
        minimum=0,
    ),
    integer(
        "EXECUTIONS_EVENT_RESULT_LIMIT",
        "65536",
        (
            "characters of the result (as JSON) stored and sent in `status` events (64 KiB); "
            'longer: cut, with `"result_truncated": true`'
        ),
        unit="characters",
        minimum=0,
    ),
    integer(
        "EXECUTIONS_EVENT_TEXT_LIMIT",
        "8192",
        (
            "characters of each text of an event (a log line's `message`, a node's `error`, a "
            "status `error` and `message`) stored and sent; longer: cut, ending in `…`, with "
            '`"<field>_truncated": true` and `"<field>_size"`'
        ),
        unit="characters",
    ),
    integer(
        "EXECUTIONS_MAX_ERROR_CHARS",
        "65536",
        (
            "characters of a node's and an execution's `error` stored (`GET "
            "/api/v1/executions/{id}`); longer: cut, ending in `…`"
        ),
        unit="characters",
    ),
    integer(
        "EXECUTIONS_MAX_NODE_OUTPUT_BYTES",
        "1048576",
        (
            "largest node output, and largest input assembled for a node with several parents, in "
            "bytes of JSON (1 MiB); larger: the attempt fails"
        ),
        unit="bytes",
        minimum=0,
    ),
    integer(
        "EXECUTIONS_MAX_EXECUTION_OUTPUT_BYTES",
        "16777216",
        (
            "all of one execution's stored node outputs plus its result, in bytes of JSON (16 "
            "MiB); the node that would pass it fails, and so does the execution"
        ),
        unit="bytes",
        minimum=0,
    ),
    integer(
        "EXECUTIONS_MAX_LOG_LINES",
        "10000",
        "log lines one execution records while it runs; past it one warning, then nothing",
        minimum=0,
    ),
    integer(
        "EXECUTIONS_MAX_LOG_BYTES",
        "4194304",
        (
            "bytes (UTF-8) of log messages one execution records (4 MiB); past it one warning, "
            "then nothing"
        ),
        unit="bytes",
        minimum=0,
    ),
    seconds(
        "EXECUTIONS_CHUNK_INTERVAL",
        "0.05",
        (
            "seconds the pieces of one stream (`ctx.stream`) are gathered into one `chunk` event; "
            "no piece waits longer"
        ),
    ),
    integer(
        "EXECUTIONS_CHUNK_MAX_BYTES",
        "16384",
        (
            "bytes at which a chunk is sent before its interval ends; a longer text is cut into "
            "several chunks, a longer JSON piece fails the node"
        ),
        unit="bytes",
    ),
    integer(
        "EXECUTIONS_MAX_STREAM_BYTES",
        "4194304",
        (
            "bytes all of one execution's streams record (4 MiB); the chunk that reaches it is "
            'cut (`"stream_truncated": true`), later pieces are not recorded'
        ),
        unit="bytes",
    ),
    integer("EXECUTIONS_MAX_STREAMS_PER_NODE", "16", "streams one node's attempt may write to"),
    integer(
        "EXECUTIONS_RECORD_BATCH",
        "500",
        (
            "log lines and chunks, of all of a runner's executions, written in one transaction at "
            "most"
        ),
    ),
    integer(
        "EXECUTIONS_RECORD_WRITERS",
        "2",
        (
            "lanes in which a runner writes its batches of records at once (each execution always "
            "in the same lane, so its records keep their order); each batch takes one of the "
            "`EXECUTIONS_DB_THREADS`"
        ),
    ),
    integer(
        "EXECUTIONS_RECORDS_PENDING",
        "100",
        (
            "log lines and chunks one run may have waiting to be written before its `ctx.log` / "
            "`ctx.stream` wait"
        ),
    ),
    text_list(
        "EXECUTIONS_HTTP_ALLOWED_HOSTS",
        "",
        (
            "hosts the `http_request` node may call: `api.example.com`, `api.example.com:8443`, "
            "or `*`; empty allows none. The addresses a host resolves to must also be public, or "
            "in `EXECUTIONS_HTTP_ALLOWED_NETWORKS`"
        ),
    ),
    text_list(
        "EXECUTIONS_HTTP_ALLOWED_NETWORKS",
        "",
        (
            "comma-separated networks (`10.0.0.0/8,fd00::/8`) the `http_request` node may reach "
            "although they are not public; empty: loopback, private, link-local "
            "(`169.254.169.254`), unspecified, multicast and reserved addresses are all refused"
        ),
    ),
    integer(
        "EXECUTIONS_HTTP_MAX_RESPONSE_BYTES",
        "1048576",
        (
            "largest response body an `http_request` node reads, counted after gzip or deflate "
            "decoding"
        ),
        unit="bytes",
        minimum=0,
    ),
    seconds(
        "EXECUTIONS_HTTP_MAX_SECONDS",
        "30",
        (
            "longest an `http_request` call may take, from resolving the host to the last byte of "
            "the body; a node's `timeout_seconds` can only be shorter"
        ),
        above=0,
    ),
    integer(
        "EXECUTIONS_EXPRESSION_MAX_LENGTH",
        "1000",
        "characters of a `transform` or `condition` expression; longer: 400",
        unit="characters",
    ),
    integer(
        "EXECUTIONS_EXPRESSION_MAX_DEPTH",
        "20",
        (
            "nesting of `()`, `[]` and `{}` in an expression (outside quotes and literals); "
            "deeper: 400"
        ),
    ),
    seconds(
        "EXECUTIONS_EXPRESSION_TIMEOUT",
        "2",
        (
            "seconds of CPU time one evaluation may use; more: the node's attempt fails (one that "
            "gets too little CPU on a busy machine is ended after "
            "3 \N{MULTIPLICATION SIGN} this + 2 s)"
        ),
    ),
    integer(
        "EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES",
        "268435456",
        (
            "address space of an evaluator process (256 MiB); an evaluation that needs more fails "
            "the node's attempt"
        ),
        unit="bytes",
    ),
    integer(
        "EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES",
        "1048576",
        "largest `transform` result, as compact JSON (1 MiB); larger: the node's attempt fails",
        unit="bytes",
    ),
    integer(
        "EXECUTIONS_EXPRESSION_WORKERS",
        "2",
        (
            "evaluator processes per server or worker process; more evaluations at once wait "
            "their turn"
        ),
    ),
]
