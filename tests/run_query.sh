#!/usr/bin/env bash
# run_query.sh VPQ QUERY — checks an example query from queries/ and, when it reads only files
# that exist, runs it and requires every sink it names to be written and non-empty.
set -euo pipefail
vpq=$1 query=$2
"$vpq" check "$query"
dir=$(cd "$(dirname "$query")" && pwd)
grep -q "connector *= *'kafka'" "$query" && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
cd "$work"
"$vpq" run "$(basename "$query")" >"$work/stdout.jsonl"
for out in $(grep -o "path *= *'out/[^']*'" "$(basename "$query")" | sed "s/.*'\(.*\)'/\1/"); do
  [ -s "$out" ] || { echo "sink $out is empty or missing"; exit 1; }
done
echo "ok: $query"
