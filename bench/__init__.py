"""Benchmarks: the per-upload approach and the physical limit, side by side.

    python -m bench           # the full table (a few minutes on two cores)
    python -m bench --quick   # a tiny trace and few repeats: the structure, in seconds

Standard library only (time.perf_counter, resource, subprocesses, `-X importtime`),
everything on loopback: the local CDN API double over HTTP, SQLite files in a
temporary directory, and dynalite for the DynamoDB store when it is installed.

Modules, one job each:
    stats       medians and percentiles
    rig         doubles, credentials, configs and child environments shared by the runs
    trace       the seeded, bursty upload trace
    efficiency  calls and quota: ours, the per-upload baseline, the physical limit
    staleness   the overwrite/delete trace: what the edge serves after each strategy, and what it cost
    storecalls  store requests per upload event and per redelivery, on each store
    ingest      upload events per second through the FC upload entry point
    dynalite    a launcher for the DynamoDB emulator
    coldstart   import time of the FC entry module and of the clients
    flush       URLs per second against a 20 ms API, and peak memory of a big flush
    report      the table
"""
