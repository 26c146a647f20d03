#!/usr/bin/env bash
# bench/access.sh: warm pulls per second through the proxy with the scheduler's
# index on vs off (issue 4). See bench/README.md, "Access recording".
#
#   bench/access.sh                 # 8 rounds of 1s per case, about 2 minutes
#   COUNT=3 BENCHTIME=300ms bench/access.sh   # a quick look
#
# Prints a markdown table: the median time of a pull with the index off and on,
# and the median and range over rounds of the pull rate ratio on/off (each
# iteration pulls from both mirrors back to back, see bench/access).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-8}
BENCHTIME=${BENCHTIME:-1s}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
echo "running: go test -run '^\$' -bench '^BenchmarkPull\$' -benchtime $BENCHTIME -count $COUNT ./bench/access/" >&2
go test -run '^$' -bench '^BenchmarkPull$' -benchtime "$BENCHTIME" -count "$COUNT" ./bench/access/ | tee "$raw" >&2

awk '
function median(a, n,    i, j, t) {
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# ratio prints the median and range of metric m of case c over its rounds.
function ratio(c, m,    j, lo, hi, q) {
  if (!((c, m, 1) in v)) return "—"
  lo = 1e9; hi = 0
  for (j = 1; j <= n[c]; j++) { q[j] = v[c, m, j]; if (q[j] < lo) lo = q[j]; if (q[j] > hi) hi = q[j] }
  return sprintf("%.3f (%.3f–%.3f)", median(q, n[c]), lo, hi)
}
function med(c, m,    j, q) {
  for (j = 1; j <= n[c]; j++) q[j] = v[c, m, j]
  return median(q, n[c])
}
/^BenchmarkPull\// {
  name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkPull\//, "", name)
  if (!(name in n)) order[++nc] = name
  k = ++n[name]
  for (i = 2; i < NF; i++) if ($(i + 1) ~ /^(cpu-)?(µs\/pull-off|µs\/pull-on|on\/off)$/) v[name, $(i + 1), k] = $i
}
END {
  print "| case (warm pulls) | µs/pull off | µs/pull on | rate on/off, wall time: median (range) | rate on/off, thread CPU time |"
  print "| --- | ---: | ---: | --- | --- |"
  for (i = 1; i <= nc; i++) {
    c = order[i]
    printf "| %s | %.0f | %.0f | %s | %s |\n", c, med(c, "µs/pull-off"), med(c, "µs/pull-on"), ratio(c, "on/off"), ratio(c, "cpu-on/off")
  }
  printf "\n%d rounds each; \"-control\" pairs two mirrors without an index (the noise floor).\n", n[order[1]]
}' "$raw"
