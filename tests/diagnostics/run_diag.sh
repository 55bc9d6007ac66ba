#!/usr/bin/env bash
# run_diag.sh VPQ FILE.vpq — runs `vpq check` on FILE.vpq from its own folder and requires exit
# code 1 and output (stdout + stderr) byte-identical to FILE.expected.
set -uo pipefail
vpq=$1 query=$2
cd "$(dirname "$query")" || exit 1
name=$(basename "$query" .vpq)
actual=$("$vpq" check "$name.vpq" 2>&1; echo "exit=$?")
expected=$(cat "$name.expected"; echo "exit=1")
if [ "$actual" != "$expected" ]; then
  diff -u <(printf '%s\n' "$expected") <(printf '%s\n' "$actual")
  exit 1
fi
