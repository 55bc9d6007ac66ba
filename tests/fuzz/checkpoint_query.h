/* checkpoint_query.h — the query whose state the checkpoint fuzzer restores (fuzz_checkpoint.c)
 * and whose seed corpus make_checkpoint_seeds.c generates: one of every kind of stateful
 * operator (hopping, session and tumbling windows with every aggregate that keeps state, a
 * table with a rollup, a table over a table with the aggregates that order its rows by event
 * time, stream-table and stream-stream joins, FORECAST and SCHEDULE). Both include it, so the
 * seeds always match the plan the fuzzer loads them into. */
#ifndef VPQ_FUZZ_CHECKPOINT_QUERY_H
#define VPQ_FUZZ_CHECKPOINT_QUERY_H

static const char vpq_fuzz_checkpoint_query[] =
    "CREATE TABLE fleet (device_id STRING PRIMARY KEY, site STRING, soc DOUBLE, capacity_kwh DOUBLE, max_kw DOUBLE);\n"
    "CREATE STREAM telemetry (device_id STRING KEY, site STRING, ts TIMESTAMP, kw DOUBLE) WITH (timestamp = 'ts');\n"
    "CREATE STREAM prices (site STRING, ts TIMESTAMP, price DOUBLE) WITH (timestamp = 'ts');\n"
    "CREATE STREAM per_min AS SELECT device_id, WINDOW_START AS start, count(*) AS n, avg(kw) AS kw, min(site) AS s,\n"
    "  percentile(kw, 0.9) AS p90, count_distinct(site) AS sites, first(kw) AS f, last(kw) AS l,\n"
    "  integrate(kw) AS kwh, time_weighted_avg(kw) AS twa, stddev(kw) AS sd\n"
    "  FROM telemetry WINDOW HOPPING (SIZE 2 MINUTES, ADVANCE BY 1 MINUTE) GROUP BY device_id EMIT FINAL;\n"
    "CREATE STREAM sessions AS SELECT device_id, count(*) AS n FROM telemetry\n"
    "  WINDOW SESSION (30 SECONDS) GROUP BY device_id;\n"
    "CREATE TABLE sites AS SELECT site, sum(kw) AS kw FROM telemetry GROUP BY ROLLUP (site);\n"
    "CREATE TABLE fleet_sites AS SELECT site, last(device_id) AS d, first(soc) AS f, integrate(soc) AS soc_h\n"
    "  FROM fleet GROUP BY site;\n"
    "CREATE STREAM joined AS SELECT t.device_id, f.soc, p.price FROM telemetry t\n"
    "  LEFT JOIN fleet f ON t.device_id = f.device_id JOIN prices p WITHIN 1 MINUTE ON t.site = p.site;\n"
    "CREATE STREAM load AS SELECT WINDOW_START AS ts, sum(kw) AS kw FROM telemetry\n"
    "  WINDOW TUMBLING (SIZE 15 MINUTES) GROUP BY site;\n"
    "CREATE STREAM fc AS FORECAST kw FROM load USING holt_winters (season = 1 HOUR)\n"
    "  HORIZON 1 HOUR EVERY 15 MINUTES STEP 15 MINUTES;\n"
    "CREATE STREAM plan AS SCHEDULE fleet FOR fc MINIMIZE PEAK HORIZON 1 HOUR STEP 15 MINUTES EMIT PLAN;\n";

#endif
