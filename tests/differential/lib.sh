# lib.sh — sourced by the differential tests. start_work VPQ sets $vpq to the vpq binary as an
# absolute path (a relative one keeps working after the move) and moves into a fresh folder,
# removed on exit.
start_work() {
  vpq=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
}
