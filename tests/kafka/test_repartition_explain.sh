#!/usr/bin/env bash
# test_repartition_explain.sh VPQ — where vpq repartitions, as golden files: `vpq explain` of
# repartition_explain/query.vpq (aggregations by the message key, by other keys after a filter
# and a join, a global aggregate, tables over a table, a ROLLUP) must print expected.txt: the
# Repartition and RepartitionScan steps with their internal topics; with `--set
# repartition=off`, expected_off.txt: no step at all, the pipeline as without repartitioning.
# `vpq run --partition-tasks` refuses the file (tasks cannot repartition yet) unless
# repartition=off. No broker is needed: both happen before any connection.
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
want="vpq: --partition-tasks cannot repartition yet: \`site_load\` groups rows by another key than the message key of the source they come from (it would need the internal topic \`query.site_load.repartition\`); run it without --partition-tasks, or with --set repartition=off for results per partition"
if [ $code != 1 ] || [ "$(cat tasks.err)" != "$want" ]; then
  echo "--partition-tasks: exit $code, stderr:"; cat tasks.err; status=1
fi
[ $status = 0 ] && echo "explain shows the repartition steps (and none with repartition=off); --partition-tasks refuses them"
exit $status
