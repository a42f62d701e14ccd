# Shell helpers shared by the board's load scripts (scripts/bench-board,
# crates/board/bench/*-measure). Source it; it defines functions only.
#
#   free_port                      a free TCP port on 127.0.0.1
#   wait_http URL [TRIES]          until URL answers 2xx (0.1 s apart)
#   login BASE USER PASSWORD JAR   logs in through the form; prints the
#                                  session cookie's value
#   metrics BASE                   BASE/metrics, with the metrics token
#   db_calls BASE                  board_db_calls_total summed, from /metrics
#   wrk_run FILE URL SECONDS [wrk args...]
#                                  one wrk run (WRK_THREADS, WRK_CONNECTIONS),
#                                  appends "rps p50 p99 dbcalls/s" to FILE
#                                  (db calls read from DB_BASE if set; wrk
#                                  pinned to CPU WRK_PIN if set)
#   report LABEL FILE              the median-rps run of FILE on one line
#   median FILE                    median of the first column
#
# Sourcing it also exports BOARD_METRICS_TOKEN (a random one unless set), so
# the boards a script starts serve /metrics to `metrics` and to nobody else.

export BOARD_METRICS_TOKEN=${BOARD_METRICS_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}

# The load scripts post hundreds of messages by one account: they measure
# throughput and latency, not the post budgets or the account quota
# (issue 27), so the boards they start have none unless the caller sets
# them (abuse-measure does).
export BOARD_POST_BUDGET_PER_ACCOUNT=${BOARD_POST_BUDGET_PER_ACCOUNT:-none}
export BOARD_POST_BUDGET_PER_ADDRESS=${BOARD_POST_BUDGET_PER_ADDRESS:-none}
export BOARD_UPLOAD_BUDGET_PER_ACCOUNT=${BOARD_UPLOAD_BUDGET_PER_ACCOUNT:-none}
export BOARD_UPLOAD_BUDGET_PER_ADDRESS=${BOARD_UPLOAD_BUDGET_PER_ADDRESS:-none}
export BOARD_ACCOUNT_QUOTA=${BOARD_ACCOUNT_QUOTA:-none}

metrics() {
  curl -s -H "Authorization: Bearer $BOARD_METRICS_TOKEN" "$1/metrics"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {
  local url=$1 tries=${2:-100}
  for _ in $(seq "$tries"); do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.1
  done
  echo "no answer from $url" >&2
  return 1
}

login() {
  local base=$1 user=$2 password=$3 jar=$4 csrf session
  csrf=$(curl -s -c "$jar" -b "$jar" "$base/login" | grep -o 'name="csrf" value="[0-9a-f]*"' | head -1 | sed 's/.*value="//; s/"$//')
  curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "csrf=$csrf" \
    -d "username=$user" -d "password=$password" "$base/login"
  session=$(awk '$6 == "board_session" { print $7 }' "$jar")
  [[ -n $session ]] || { echo "login as $user at $base failed" >&2; return 1; }
  echo "$session"
}

db_calls() {
  metrics "$1" | awk '/^board_db_calls_total/ { s += $2 } END { print s + 0 }'
}

wrk_run() {
  local file=$1 url=$2 seconds=$3 before=0 after=0 out
  shift 3
  [[ -n ${DB_BASE:-} ]] && before=$(db_calls "$DB_BASE")
  out=$(${WRK_PIN:+taskset -c "$WRK_PIN"} wrk -t"${WRK_THREADS:-2}" -c"${WRK_CONNECTIONS:-64}" -d"${seconds}s" --latency "$@" "$url")
  [[ -n ${DB_BASE:-} ]] && after=$(db_calls "$DB_BASE")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    grep -E 'Non-2xx|Socket errors' <<<"$out" >&2
  fi
  awk -v a="$after" -v b="$before" -v s="$seconds" '
    /^Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = $2 }
    $1 == "99%" { p99 = $2 }
    END { printf "%s %s %s %.2f\n", rps, p50, p99, (a - b) / s }' <<<"$out" >>"$file"
}

report() {
  local label=$1 file=$2
  sort -n "$file" | awk -v label="$label" '{ line[NR] = $0 } END {
    split(line[int((NR + 1) / 2)], f, " ")
    printf "%-34s %10s req/s   p50 %-9s p99 %-9s db calls/s %s   (median of %d)\n", label, f[1], f[2], f[3], f[4], NR }'
}

median() {
  sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
