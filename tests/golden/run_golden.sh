#!/usr/bin/env bash
# run_golden.sh VPQ CASE_DIR — a golden test: copies CASE_DIR to a temp folder, runs
# `vpq run query.vpq` there (stdout to stdout.jsonl), requires exit 0 (or the code in
# CASE_DIR/expected_exit), then compares every file under CASE_DIR/expected/ with the file of
# the same path produced by the run, byte for byte — except that in dead-letter files (names
# containing "dead") the free-text "detail" field is dropped before comparing. An
# expected/summary.txt is compared with the run's summary lines on stderr (`vpq: N rows in, ...`
# and `vpq: refused by reason: ...`), so a case can check its counts of late and malformed rows.
set -uo pipefail
vpq=$1
case_dir=$(cd "$2" && pwd) || exit 1
[ -d "$case_dir/expected" ] || { echo "$case_dir has no expected/ folder"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$case_dir/." "$work/"
rm -rf "$work/expected"
cd "$work" || exit 1
"$vpq" run query.vpq >stdout.jsonl 2>stderr.txt
code=$?
want=0
[ -f "$case_dir/expected_exit" ] && want=$(cat "$case_dir/expected_exit")
if [ "$code" != "$want" ]; then
  echo "vpq run exited $code, expected $want"; cat stderr.txt; exit 1
fi
normalise() {
  /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
    line = line.rstrip("\n")
    try:
        obj = json.loads(line)
    except ValueError:
        print(line); continue
    if isinstance(obj, dict): obj.pop("detail", None)
    print(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))' "$1"
}
grep -E '^vpq: ([0-9]+ rows in|refused by reason)' stderr.txt >summary.txt
status=0
compared=0
while IFS= read -r -d '' expected; do
  rel=${expected#"$case_dir/expected/"}
  compared=$((compared + 1))
  if [ ! -f "$work/$rel" ]; then
    echo "missing output: $rel"; status=1; continue
  fi
  case "$(basename "$rel")" in
    *dead*) diff -u <(normalise "$expected") <(normalise "$work/$rel") || status=1 ;;
    *) diff -u "$expected" "$work/$rel" || status=1 ;;
  esac
done < <(find "$case_dir/expected" -type f -print0)
[ $compared -gt 0 ] || { echo "nothing to compare in $case_dir/expected"; status=1; }
[ $status = 0 ] || cat stderr.txt
exit $status
