#!/bin/bash
# The embedded store's first start (docs/design.md section 23), measured by hand, not by `npm run bench`:
#   npm run build && bench/embedded-start.sh . <label>
# starts node dist/main.js twice on a fresh DATA_DIR (a first start, then a later one) and prints the time until the
# port answers and the peak RSS (VmHWM, as /usr/bin/time -v reports it). To compare with initdb on the same build,
# run it again with embedded/pgdata-template.json moved aside, alternating the two.
set -u
wt=$1; label=$2
out=$(mktemp -d)
dir=$out
for run in first second; do
  port=$(( 20000 + RANDOM % 20000 ))
  start=$(date +%s.%N)
  cd $wt
  DATA_DIR=$dir/data PORT=$port HOST=127.0.0.1 LOG_LEVEL=info TALLY_ADMIN_KEY=measure-admin-key-0123456789abcdef \
    /usr/bin/time -v node dist/main.js > $out/$label-$run.out 2> $out/$label-$run.err &
  timepid=$!
  for i in $(seq 1 1200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/health 2>/dev/null)
    [ "$code" != "000" ] && break
    sleep 0.05
  done
  ready=$(date +%s.%N)
  nodepid=$(pgrep -P $timepid)
  hwm=$(grep VmHWM /proc/$nodepid/status)
  kill -TERM $nodepid
  wait $timepid
  echo "$label $run ready_s=$(echo "$ready - $start" | bc) $hwm | $(grep 'Maximum resident' $out/$label-$run.err | tr -s ' ')"
done
rm -rf $out
