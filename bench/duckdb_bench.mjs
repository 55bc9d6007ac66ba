// duckdb_bench.mjs FILE OUT — the same 1-minute per-device aggregation as tumbling.vpq in
// DuckDB on one thread (read_json straight from the file, result written with COPY); prints
// the elapsed seconds.
import { DuckDBInstance } from '@duckdb/node-api';

const [file, out] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
await con.run('SET threads = 1');
const started = process.hrtime.bigint();
await con.run(`COPY (
  SELECT device_id, (ts // 60000) * 60000 AS minute, count(*) AS n, avg(soc) AS soc,
         sum(power_kw) AS power_kw, max(power_kw) AS peak_kw
  FROM read_json('${file}', format = 'newline_delimited',
                 columns = {device_id: 'VARCHAR', site: 'VARCHAR', region: 'VARCHAR', ts: 'BIGINT',
                            soc: 'DOUBLE', power_kw: 'DOUBLE', capacity_kwh: 'DOUBLE', max_kw: 'DOUBLE'})
  GROUP BY device_id, minute) TO '${out}' (FORMAT json)`);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(seconds.toFixed(3));
