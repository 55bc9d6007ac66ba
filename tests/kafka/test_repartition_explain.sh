#!/usr/bin/env bash
# test_repartition_explain.sh VPQ — where vpq repartitions, as golden files: `vpq explain` of
# repartition_explain/query.vpq (aggregations by the message key, by other keys after a filter
# and a join, a global aggregate, tables over a table, a ROLLUP; joins of two group-read
# streams, of a stream and a group-read table, a self-join on the message key; a SCHEDULE of a
# group-read fleet) must print expected.txt: the Repartition and RepartitionScan steps with
# their internal topics (both sides of a join into one topic, a SCHEDULE's fleet and forecast
# into one topic under one key); with `--set repartition=off`, expected_off.txt: no step at
# all, the pipeline as without repartitioning. `vpq run --partition-tasks` refuses the file
# (tasks cannot repartition yet) unless repartition=off. `vpq run` refuses a LEFT JOIN of a
# stream read whole by every member to a group-read stream, at the JOIN, naming the way out.
# No broker is needed: all happens before any connection.
set -uo pipefail
vpq=$1
dir=$(cd "$(dirname "$0")/repartition_explain" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
cp "$dir/query.vpq" .
status=0
"$vpq" explain query.vpq >on.txt || { echo "explain failed"; status=1; }
diff -u "$dir/expected.txt" on.txt || status=1
"$vpq" explain --set repartition=off query.vpq >off.txt || { echo "explain --set repartition=off failed"; status=1; }
diff -u "$dir/expected_off.txt" off.txt || status=1
"$vpq" run query.vpq --brokers 127.0.0.1:9 --state-dir state --partition-tasks 2>tasks.err
code=$?
want="vpq: --partition-tasks cannot repartition yet: \`site_load\` groups or joins rows by another key than the message key of the source they come from (it would need the internal topic \`query.site_load.repartition\`); run it without --partition-tasks, or with --set repartition=off for results per partition"
if [ $code != 1 ] || [ "$(cat tasks.err)" != "$want" ]; then
  echo "--partition-tasks: exit $code, stderr:"; cat tasks.err; status=1
fi
cat >refused.vpq <<'VPQ'
CREATE STREAM prices (site STRING, ts TIMESTAMP, price DOUBLE)
  WITH (connector = 'file', path = 'prices.jsonl', timestamp = 'ts');
CREATE STREAM meters (meter_id STRING KEY, site STRING, ts TIMESTAMP, load_kw DOUBLE)
  WITH (connector = 'kafka', topic = 'vpp.meters', timestamp = 'ts');
CREATE STREAM priced AS
  SELECT p.site, p.price, m.load_kw FROM prices p LEFT JOIN meters m WITHIN 1 MINUTE ON p.site = m.site;
VPQ
"$vpq" run refused.vpq --brokers 127.0.0.1:9 2>refused.err
code=$?
want="refused.vpq:6:51: error: cannot scale out the join of \`prices\` with \`meters\` in \`priced\`: its left side is read whole by every member and its right side only in part, so every member would write the left rows without a match; run it on one member with --set repartition=off"
if [ $code != 1 ] || [ "$(head -1 refused.err)" != "$want" ]; then
  echo "the refused join: exit $code, stderr:"; cat refused.err; status=1
fi
[ $status = 0 ] && echo "explain shows the repartition steps (and none with repartition=off); --partition-tasks refuses them; a join that cannot scale out is refused"
exit $status
