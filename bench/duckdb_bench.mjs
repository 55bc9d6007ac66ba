// duckdb_bench.mjs FILE OUT [tumbling|join] — the query of tumbling.vpq (the 1-minute
// per-device aggregation) or join.vpq (each reading with the device's readings of the next 15
// seconds) in DuckDB on one thread (read_json straight from the file, result written with
// COPY); prints the elapsed seconds.
import { DuckDBInstance } from '@duckdb/node-api';

const [file, out, query = 'tumbling'] = process.argv.slice(2);
const telemetry = `read_json('${file}', format = 'newline_delimited',
                 columns = {device_id: 'VARCHAR', site: 'VARCHAR', region: 'VARCHAR', ts: 'BIGINT',
                            soc: 'DOUBLE', power_kw: 'DOUBLE', capacity_kwh: 'DOUBLE', max_kw: 'DOUBLE'})`;
const queries = {
  tumbling: `SELECT device_id, (ts // 60000) * 60000 AS minute, count(*) AS n, avg(soc) AS soc,
                    sum(power_kw) AS power_kw, max(power_kw) AS peak_kw
             FROM ${telemetry} GROUP BY device_id, minute`,
  join: `WITH t AS (SELECT * FROM ${telemetry})
         SELECT a.device_id, a.ts AS from_ts, b.ts AS to_ts, b.soc - a.soc AS soc_change
         FROM t a JOIN t b ON a.device_id = b.device_id AND b.ts > a.ts AND b.ts - a.ts <= 15000`,
};
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
await con.run('SET threads = 1');
const started = process.hrtime.bigint();
await con.run(`COPY (${queries[query]}) TO '${out}' (FORMAT json)`);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(seconds.toFixed(3));
