#!/usr/bin/env bash
# bench/run.sh: the proxy side by side with distribution's proxy mode, nginx sendfile
# and a direct pull from the upstream, all on loopback (issue 6). See bench/README.md.
#
#   bench/run.sh            # full run, ~8 minutes on 2 cores (plus first-time builds)
#   QUICK=1 bench/run.sh    # smoke run with small blobs, ~1-2 minutes
#
# Prints one markdown table on stdout and writes it to bench/out/results.md; progress
# goes to stderr, raw measurements and server logs to bench/out/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/out}

# ---- settings (environment overrides) ---------------------------------------------
if [[ ${QUICK:-0} == 1 ]]; then
  : "${WARM_MIB:=16 64}" "${COLD_MIB:=64}" "${HERD_MIB:=16}" "${RATE_MIB:=50}"
  : "${REPEAT:=2}" "${WRK_SECONDS:=3}" "${MIN_RUN_MIB:=128}" "${TTFB_N:=3}"
  : "${IMAGE_LAYERS:=4}" "${IMAGE_LAYER_MIB:=4}" "${IMAGES:=2}" "${CLUSTER_MIB:=32}"
fi
WARM_MIB=${WARM_MIB:-128 512}      # warm blob sizes
CONC=${CONC:-1 8 32}               # concurrent clients for warm blobs
REPEAT=${REPEAT:-4}                # warm throughput: best of REPEAT; ratios: median of paired runs
MIN_RUN_MIB=${MIN_RUN_MIB:-1024}   # each warm run moves at least this much (clients repeat)
COLD_MIB=${COLD_MIB:-512}          # cold pull blob
TTFB_N=${TTFB_N:-9}                # cold time to first byte: also the median over this many 1 MiB blobs
RATE_MIB=${RATE_MIB:-100}          # upstream throttle for cold pulls and the throttled herd (README: why 100)
HERD_MIB=${HERD_MIB:-256}          # thundering herd blob
HERD_CLIENTS=${HERD_CLIENTS:-32}
HERD_RUNS=${HERD_RUNS:-3}          # the proxy's herd runs this often (median reported); distribution's once
WRK_SECONDS=${WRK_SECONDS:-10}     # warm manifest by tag
WRK_CONNS=${WRK_CONNS:-32}
TAGFRESHNESS_ALT=${TAGFRESHNESS_ALT:-1s}  # extra manifest row with this window ("" skips)
IMAGE_LAYERS=${IMAGE_LAYERS:-8}
IMAGE_LAYER_MIB=${IMAGE_LAYER_MIB:-16}
IMAGES=${IMAGES:-5}                # cold image pull: median over this many distinct images
CLUSTER=${CLUSTER:-1}              # 1: also 3 replicas on S3 (versitygw + Redis) vs 1 on disk (issue 9)
CLUSTER_MIB=${CLUSTER_MIB:-128}    # the cluster's warm blob
CLUSTER_CONC=${CLUSTER_CONC:-8}    # its warm clients, round-robin over the replicas
CLUSTER_REDIRECT=${CLUSTER_REDIRECT:-0}  # 1: replicas answer hits 307 to versitygw (the default); 0: they stream them
PORT_BASE=${PORT_BASE:-18500}
REGISTRY_VERSION=${REGISTRY_VERSION:-v3.1.2}
CRANE_VERSION=${CRANE_VERSION:-v0.22.1}
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}
# Warm blob runs pin the servers to SERVER_CPUS and the client to CLIENT_CPUS (default:
# first half / second half of the cores), which makes them far less noisy; PIN=0 turns it off.
PIN=${PIN:-1}
NCPU=$(nproc)
SERVER_CPUS=${SERVER_CPUS:-0-$(( NCPU / 2 - 1 < 0 ? 0 : NCPU / 2 - 1 ))}
CLIENT_CPUS=${CLIENT_CPUS:-$(( NCPU / 2 ))-$(( NCPU - 1 ))}
PROXY_REF=${PROXY_REF:-}            # build the proxy from this git revision instead of the work tree
PPROF=${PPROF:-0}                  # 1: also save proxy CPU and heap profiles in bench/out
KEEP=${KEEP:-0}                    # 1: keep the temporary directory
CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ocimirror-bench}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ---- processes: every one we start is recorded and killed on exit --------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ocimirror-bench.XXXXXX")
declare -A PID=()
cleanup() {
  local rc=$? name p
  trap - EXIT INT TERM
  for name in "${!PID[@]}"; do
    p=${PID[$name]}
    kill -TERM "$p" 2>/dev/null || true
  done
  for name in "${!PID[@]}"; do
    p=${PID[$name]}
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ -d $TMP/logs ]]; then mkdir -p "$OUT/logs" && cp -f "$TMP"/logs/*.log "$OUT/logs/" 2>/dev/null || true; fi
  if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run CMD in the background, output to $TMP/logs/NAME.log.
start() {
  local name=$1; shift
  "$@" >"$TMP/logs/$name.log" 2>&1 &
  PID[$name]=$!
}
stop() {
  local p=${PID[$1]:-}
  [[ -n $p ]] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  unset "PID[$1]"
}
# wait_http URL SECONDS: until URL answers 200 (bounded).
wait_http() {
  local deadline=$((SECONDS + $2))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]]; do
    ((SECONDS < deadline)) || die "$1 did not answer within $2 s"
    sleep 0.1
  done
}
# wait_file PATH SECONDS: until PATH exists (bounded).
wait_file() {
  local deadline=$((SECONDS + $2))
  until [[ -e $1 ]]; do
    ((SECONDS < deadline)) || die "$1 did not appear within $2 s"
    sleep 0.05
  done
}
# wait_port PORT SECONDS: until something listens on PORT (bounded).
wait_port() {
  local deadline=$((SECONDS + $2))
  until ! port_free "$1"; do
    ((SECONDS < deadline)) || die "nothing listens on port $1 after $2 s"
    sleep 0.1
  done
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- /proc: CPU ticks and peak RSS of a set of pids ------------------------------------
TCK=$(getconf CLK_TCK)
cpu_ticks() { # sum of utime+stime (fields 14 and 15 of /proc/<pid>/stat)
  local t=0 p s f
  for p in "$@"; do
    s=$(<"/proc/$p/stat")
    read -ra f <<<"${s##*) }" # after "pid (comm) ": f[0] is field 3
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
reset_hwm() { local p; for p in "$@"; do echo 5 >"/proc/$p/clear_refs"; done; }
hwm_mib() { # VmHWM summed over the pids, MiB
  local k=0 p v
  for p in "$@"; do v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status"); k=$((k + v)); done
  awk -v k="$k" 'BEGIN {printf "%.0f", k / 1024}'
}

# pin CPUS PID...: move every thread of the processes to CPUS (no-op with PIN=0).
pin() {
  local cpus=$1 p; shift
  [[ $PIN == 1 && $NCPU -ge 2 ]] || return 0
  for p in "$@"; do taskset -a -p -c "$cpus" "$p" >/dev/null; done
}
CLIENT_PIN=
if [[ $PIN == 1 && $NCPU -ge 2 ]]; then
  CLIENT_PIN="--pin $CLIENT_CPUS"
  PIN_NOTE="servers pinned to CPU $SERVER_CPUS, client to CPU $CLIENT_CPUS"
fi

# ---- install and build -------------------------------------------------------------------
rm -rf "$OUT/raw" "$OUT/logs" "$OUT"/*.pprof
mkdir -p "$TMP/logs" "$TMP/bin" "$OUT/raw" "$CACHE"
missing=()
tools=(nginx:nginx-light wrk:wrk curl:curl jq:jq)
[[ $CLUSTER != 1 ]] || tools+=(redis-server:redis-server)
for pair in "${tools[@]}"; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

BIN=$TMP/bin
log "building the proxy and the bench helpers"
if [[ -n $PROXY_REF ]]; then # a committed revision, e.g. while the work tree is mid-edit
  mkdir -p "$TMP/src"
  (cd "$ROOT" && git archive "$PROXY_REF") | tar -x -C "$TMP/src"
  (cd "$TMP/src" && go build -o "$BIN/proxy" ./cmd/proxy)
  PROXY_VERSION=$(cd "$ROOT" && git rev-parse --short "$PROXY_REF")
else
  (cd "$ROOT" && go build -o "$BIN/proxy" ./cmd/proxy)
  PROXY_VERSION=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?')
fi
(cd "$ROOT" && go build -o "$BIN/" ./bench/cmd/get ./bench/cmd/tap ./bench/cmd/seed)
REGISTRY=$CACHE/registry-$REGISTRY_VERSION
if [[ ! -x $REGISTRY ]]; then
  log "building distribution's registry $REGISTRY_VERSION from the Go module proxy"
  mod=$TMP/regbuild
  mkdir -p "$mod"
  (cd "$mod" && go mod init regbuild >/dev/null 2>&1 &&
    go get "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" 2>"$TMP/logs/regbuild.log" &&
    go build -o "$REGISTRY" github.com/distribution/distribution/v3/cmd/registry)
fi
# cached_tool NAME PACKAGE VERSION: a Go command installed once into $CACHE as
# NAME-VERSION; prints its path.
cached_tool() {
  local path=$CACHE/$1-$3
  if [[ ! -x $path ]]; then
    log "installing $1 $3"
    GOBIN=$TMP/bin go install "$2@$3" >&2
    mv "$TMP/bin/$1" "$path"
  fi
  echo "$path"
}
CRANE=$(cached_tool crane github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION")
if [[ $CLUSTER == 1 ]]; then # one on PATH (.ci/test installs it) saves a 3-minute build
  VERSITYGW=$(command -v versitygw || cached_tool versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION")
fi

# ---- servers --------------------------------------------------------------------------
UP_PORT=$PORT_BASE; TAP_PORT=$((PORT_BASE + 1)); P_PORT=$((PORT_BASE + 2))
P_DEBUG=$((PORT_BASE + 3)); D_PORT=$((PORT_BASE + 4)); N_PORT=$((PORT_BASE + 5)); PF_PORT=$((PORT_BASE + 6))
S3_PORT=$((PORT_BASE + 7)); REDIS_PORT=$((PORT_BASE + 8)); R_PORTS=($((PORT_BASE + 9)) $((PORT_BASE + 10)) $((PORT_BASE + 11)))
for p in $UP_PORT $TAP_PORT $P_PORT $P_DEBUG $D_PORT $N_PORT $PF_PORT $S3_PORT $REDIS_PORT "${R_PORTS[@]}"; do
  port_free "$p" || die "port $p is in use (set PORT_BASE)"
done
UP=http://127.0.0.1:$UP_PORT; TAP=http://127.0.0.1:$TAP_PORT
P=http://127.0.0.1:$P_PORT; D=http://127.0.0.1:$D_PORT; N=http://127.0.0.1:$N_PORT
P_DATA=$TMP/proxy-data; D_DATA=$TMP/dist-data
S3=http://127.0.0.1:$S3_PORT; S3_KEY=benchaccess; S3_SECRET=bench-secret-key
S3_DATA=$TMP/s3/cache/cache # versitygw's posix backend: bucket "cache", the replicas' prefix /cache
export OTEL_TRACES_EXPORTER=none # distribution: no trace collector here

cat >"$TMP/upstream.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $TMP/upstream-data}
http: {addr: 127.0.0.1:$UP_PORT}
EOF
cat >"$TMP/dist.yml" <<EOF
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $D_DATA}
http: {addr: 127.0.0.1:$D_PORT}
proxy: {remoteurl: $TAP, ttl: 168h}
EOF
# proxy_config PORT DATA TAGFRESHNESS [DEBUG_PORT]: DATA is the filesystem root, or
# s3:STATEDIR for a replica of the cluster (the bucket, Redis, its own state directory).
proxy_config() {
  local storage="  filesystem: {rootdirectory: $2}" state= secret=
  if [[ $2 == s3:* ]]; then
    storage="  s3: {bucket: cache, rootdirectory: /cache, region: us-east-1, regionendpoint: \"$S3\",
    forcepathstyle: true, secure: false, v4auth: true, accesskey: $S3_KEY, secretkey: $S3_SECRET}
  redirect: {disable: $([[ $CLUSTER_REDIRECT == 1 ]] && echo false || echo true)}
redis: {addrs: [\"127.0.0.1:$REDIS_PORT\"]}"
    # peerurl and a shared http.secret: a replica waiting for another's fill
    # streams it from that replica instead of waiting for the commit.
    state=", statedirectory: ${2#s3:}, peerurl: \"http://127.0.0.1:$1\""
    secret="  secret: bench-cluster-secret"
  fi
  cat <<EOF
version: 0.1
log: {level: info}
storage:
$storage
http:
  addr: 127.0.0.1:$1
  draintimeout: 1s
EOF
  [[ -z $secret ]] || echo "$secret"
  [[ -z ${4:-} ]] || echo "  debug: {addr: 127.0.0.1:$4}"
  echo "proxy: {remoteurl: $TAP, tagfreshness: $3$state}"
}
proxy_config "$P_PORT" "$P_DATA" 0s "$P_DEBUG" >"$TMP/proxy.yml"
# nginx gets as many workers as the servers have cores (all of them when unpinned).
cpu_count() { # "0-1,4" -> 3
  local n=0 part
  for part in ${1//,/ }; do
    if [[ $part == *-* ]]; then n=$((n + ${part#*-} - ${part%-*} + 1)); else n=$((n + 1)); fi
  done
  echo "$n"
}
NGINX_WORKERS=auto
[[ -z $CLIENT_PIN ]] || NGINX_WORKERS=$(cpu_count "$SERVER_CPUS")
mkdir -p "$TMP/nginx" "$P_DATA"
cat >"$TMP/nginx.conf" <<EOF
user root;                  # the cached blob files are 0640 root
worker_processes $NGINX_WORKERS;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/logs/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path $TMP/nginx/body;
  server {
    listen 127.0.0.1:$N_PORT;
    root $P_DATA;           # the proxy's own cached files
  }
}
EOF

log "starting upstream, tap, proxy, distribution proxy, nginx"
start upstream "$REGISTRY" serve "$TMP/upstream.yml"
start tap "$BIN/tap" -listen "127.0.0.1:$TAP_PORT" -upstream "$UP"
start proxy "$BIN/proxy" serve "$TMP/proxy.yml"
start dist "$REGISTRY" serve "$TMP/dist.yml"
start nginx nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" -e "$TMP/logs/nginx-error.log"
wait_http "$UP/v2/" 30; wait_http "$TAP/v2/" 10; wait_http "$P/v2/" 30; wait_http "$D/v2/" 30
wait_port "$N_PORT" 10
declare -A BASE=([P]=$P [D]=$D [N]=$N [U]=$TAP) DATA=([P]=$P_DATA [D]=$D_DATA)
declare -A PIDS=([P]=${PID[proxy]} [D]=${PID[dist]} [N]="${PID[nginx]} $(pgrep -P "${PID[nginx]}" | tr '\n' ' ')")
[[ ${PIDS[N]} == *[0-9]\ [0-9]* ]] || die "nginx has no worker (see logs/nginx-error.log)"

# ---- seed the upstream --------------------------------------------------------------------
declare -A DIG=() SIZE=()
blobs=(); i=0
for s in $WARM_MIB; do blobs+=("warm$i=$s"); i=$((i + 1)); done
blobs+=("cold=$COLD_MIB")
for r in $(seq "$HERD_RUNS"); do
  for v in t u; do blobs+=("single_$v$r=$HERD_MIB" "herd_$v$r=$HERD_MIB"); done
done
for i in $(seq "$TTFB_N"); do blobs+=("ttfb$i=1"); done
[[ $CLUSTER != 1 ]] || blobs+=("cl_warm=$CLUSTER_MIB" "cl_cold1_S=$COLD_MIB" "cl_cold1_P=$COLD_MIB" "cl_cold3_S=$COLD_MIB" "cl_cold3_P=$COLD_MIB")
log "seeding the upstream: ${blobs[*]} (MiB); $IMAGES images of $IMAGE_LAYERS x $IMAGE_LAYER_MIB MiB layers"
"$BIN/seed" -registry "$UP" -repo bench/blobs -image bench/image -images "$IMAGES" \
  -layers "$IMAGE_LAYERS" -layer-mib "$IMAGE_LAYER_MIB" "${blobs[@]}" >"$TMP/seed.txt"
while read -r nm d sz; do DIG[$nm]=$d; SIZE[$nm]=$sz; done < <(grep -v '^image ' "$TMP/seed.txt")
sync

blob_url() { echo "$1/v2/bench/blobs/blobs/${DIG[$2]}"; } # BASE NAME
blob_path() { local h=${DIG[$2]#sha256:}; echo "$1/docker/registry/v2/blobs/sha256/${h:0:2}/$h/data"; }
tap() { curl -sf "$TAP/_tap/$1"; }
tap_blob_gets() { tap stats | jq '.by_kind["GET blob"] // 0'; }
# get NAME [--pin CPUS] ARGS...: the load client; its JSON line goes to raw/NAME.json and stdout.
get() {
  local n=$1 cpus=0-$((NCPU - 1)); shift
  if [[ ${1:-} == --pin ]]; then cpus=$2; shift 2; fi
  taskset -c "$cpus" "$BIN/get" "$@" | tee "$OUT/raw/$n.json"
}
f() { awk -v v="$1" -v fmt="$2" 'BEGIN {printf fmt, v}'; }   # format a number
calc() { awk "BEGIN {print $*}"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN {print (a + 0 > b + 0) ? a : b}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
declare -A R=() # results

# ---- 1. warm blob throughput ----------------------------------------------------------------
declare -A TICKS=([P]=0 [D]=0 [N]=0) BYTES=([P]=0 [D]=0 [N]=0)
i=0
for s in $WARM_MIB; do
  b=warm$i; i=$((i + 1))
  log "warm $s MiB: filling both caches (verified), then best of $REPEAT at c=$CONC"
  sum=${DIG[$b]#sha256:}
  for srv in P D; do
    get "fill-$srv-$b" -c 1 -sha256 "$sum" "$(blob_url "${BASE[$srv]}" $b)" >/dev/null
    wait_file "$(blob_path "${DATA[$srv]}" $b)" 120
  done
  sync
  tap reset
  for srv in P D; do get "hit-$srv-$b" -c 1 -sha256 "$sum" "$(blob_url "${BASE[$srv]}" $b)" >/dev/null; done
  [[ $(tap_blob_gets) == 0 ]] || log "WARNING: a warm blob GET went upstream"
  declare -A URL=([P]=$(blob_url "$P" $b) [D]=$(blob_url "$D" $b) [N]=$N$(blob_path "" $b))
  curl -sf -o /dev/null "${URL[N]}" || die "nginx does not serve ${URL[N]}"
  reset_hwm ${PIDS[P]} ${PIDS[D]} ${PIDS[N]}
  pin "$SERVER_CPUS" ${PIDS[P]} ${PIDS[D]} ${PIDS[N]}
  for c in $CONC; do
    rounds=$(( (MIN_RUN_MIB + c * s - 1) / (c * s) ))
    for srv in P D N; do R[warm-$s-$c-$srv]=0; done
    pn=() dn=()
    for rep in $(seq "$REPEAT"); do
      declare -A rate=()
      for srv in P N D; do # interleaved, nginx between the two: the machine's drifts hit pairs alike
        t0=$(cpu_ticks ${PIDS[$srv]})
        out=$(get "warm-$s-c$c-$srv-$rep" $CLIENT_PIN -c "$c" -n "$rounds" -size "${SIZE[$b]}" "${URL[$srv]}")
        TICKS[$srv]=$(( TICKS[$srv] + $(cpu_ticks ${PIDS[$srv]}) - t0 ))
        BYTES[$srv]=$(( BYTES[$srv] + $(jq .bytes <<<"$out") ))
        rate[$srv]=$(jq .mib_s <<<"$out")
        R[warm-$s-$c-$srv]=$(max "${rate[$srv]}" "${R[warm-$s-$c-$srv]}")
      done
      pn+=("$(calc "${rate[P]} / ${rate[N]}")"); dn+=("$(calc "${rate[D]} / ${rate[N]}")")
    done
    R[warmratio-$s-$c-P]=$(median "${pn[@]}"); R[warmratio-$s-$c-D]=$(median "${dn[@]}")
    log "  c=$c: proxy $(f "${R[warm-$s-$c-P]}" %.0f), distribution $(f "${R[warm-$s-$c-D]}" %.0f), nginx $(f "${R[warm-$s-$c-N]}" %.0f) MiB/s; paired proxy/nginx $(printf '%.2f ' "${pn[@]}")"
  done
  for srv in P D N; do R[rss-warm-$s-$srv]=$(hwm_mib ${PIDS[$srv]}); done
  pin "0-$((NCPU - 1))" ${PIDS[P]} ${PIDS[D]} ${PIDS[N]}
done
for srv in P D N; do
  R[cpu-$srv]=$(calc "${TICKS[$srv]} / $TCK / (${BYTES[$srv]} / 1073741824)")
done

if [[ $PPROF == 1 ]]; then
  s=${WARM_MIB##* }
  log "pprof: proxy CPU profile under warm $s MiB c=32 load"
  curl -sf -o "$OUT/proxy-warm-cpu.pprof" "http://127.0.0.1:$P_DEBUG/debug/pprof/profile?seconds=8" &
  cpid=$!
  "$BIN/get" -c 32 -n $(( 8 * 1500 / (32 * s) + 1 )) "$(blob_url "$P" warm$((i - 1)))" >/dev/null
  wait "$cpid" || log "pprof: CPU profile failed"
fi

# ---- 2. warm manifest by tag ---------------------------------------------------------------
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
manifest_url() { echo "$1/v2/bench/image/manifests/t0"; }
# wrk_run NAME URL PIDS: requests/s and upstream requests per client request
wrk_run() {
  local name=$1 url=$2 pids=$3 out reqs rps up non2xx
  curl -sf -o /dev/null -H "$ACCEPT" "$url" || die "GET $url failed"
  wrk -t2 -c"$WRK_CONNS" -d2s -H "$ACCEPT" "$url" >/dev/null 2>&1 # warm-up: connections, first contact
  reset_hwm $pids
  tap reset
  out=$(wrk -t2 -c"$WRK_CONNS" -d"${WRK_SECONDS}s" --timeout 10s -H "$ACCEPT" "$url" 2>&1) || die "wrk: $out"
  up=$(tap stats | jq .requests)
  echo "$out" >"$OUT/raw/wrk-$name.txt"
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [[ -z $non2xx ]] || log "WARNING: $name: $non2xx non-2xx answers under wrk"
  R[man-$name]=$rps; R[manup-$name]=$(calc "$up / $reqs"); R[rss-man-$name]=$(hwm_mib $pids)
  log "  $name: $(f "$rps" %.0f) req/s, $(f "${R[manup-$name]}" %.4f) upstream requests per request"
}
log "warm manifest by tag: wrk -c$WRK_CONNS for ${WRK_SECONDS}s"
wrk_run P "$(manifest_url "$P")" "${PIDS[P]}"
wrk_run D "$(manifest_url "$D")" "${PIDS[D]}"
if [[ -n $TAGFRESHNESS_ALT ]]; then
  proxy_config "$PF_PORT" "$TMP/proxy-fresh-data" "$TAGFRESHNESS_ALT" >"$TMP/proxy-fresh.yml"
  start proxyfresh "$BIN/proxy" serve "$TMP/proxy-fresh.yml"
  wait_http "http://127.0.0.1:$PF_PORT/v2/" 30
  wrk_run PF "$(manifest_url "http://127.0.0.1:$PF_PORT")" "${PID[proxyfresh]}"
  stop proxyfresh
fi

# ---- 3. cold pull, upstream throttled ----------------------------------------------------------
log "cold $COLD_MIB MiB pull with the upstream at $RATE_MIB MiB/s: direct, proxy, distribution"
tap "rate?mib=$RATE_MIB"
reset_hwm ${PIDS[P]} ${PIDS[D]}
for srv in U P D; do
  tap reset
  out=$(get "cold-$srv" -c 1 -sha256 "${DIG[cold]#sha256:}" "$(blob_url "${BASE[$srv]}" cold)")
  R[cold-ttfb-$srv]=$(jq '.ttfb_ms[0]' <<<"$out"); R[cold-total-$srv]=$(jq '.total_s[0]' <<<"$out")
  R[cold-up-$srv]=$(tap_blob_gets)
  log "  $srv: ttfb $(f "${R[cold-ttfb-$srv]}" %.1f) ms, total $(f "${R[cold-total-$srv]}" %.2f) s, upstream GETs ${R[cold-up-$srv]}"
  [[ $srv == U ]] || wait_file "$(blob_path "${DATA[$srv]}" cold)" 120
  ttfbs=()
  for i in $(seq "$TTFB_N"); do
    ttfbs+=("$(get "ttfb$i-$srv" -c 1 "$(blob_url "${BASE[$srv]}" ttfb$i)" | jq '.ttfb_ms[0]')")
  done
  R[ttfb-med-$srv]=$(median "${ttfbs[@]}")
  log "  $srv: median ttfb of $TTFB_N cold 1 MiB blobs $(f "${R[ttfb-med-$srv]}" %.1f) ms"
done
for srv in P D; do R[rss-cold-$srv]=$(hwm_mib ${PIDS[$srv]}); done

# ---- 4. thundering herd ------------------------------------------------------------------
# herd_once VARIANT SERVER RUN: a single cold client, then a herd on another cold blob.
herd_once() {
  local v=$1 srv=$2 r=$3 out single slowest
  tap reset
  out=$(get "single-$v$r-$srv" -c 1 -sha256 "${DIG[single_$v$r]#sha256:}" "$(blob_url "${BASE[$srv]}" single_$v$r)")
  single=$(jq .max_s <<<"$out")
  wait_file "$(blob_path "${DATA[$srv]}" single_$v$r)" 120
  tap reset
  out=$(get "herd-$v$r-$srv" -c "$HERD_CLIENTS" -size "${SIZE[herd_$v$r]}" "$(blob_url "${BASE[$srv]}" herd_$v$r)")
  slowest=$(jq .max_s <<<"$out")
  R[herd-$v$r-$srv]=$slowest; R[single-$v$r-$srv]=$single; R[herdratio-$v$r-$srv]=$(calc "$slowest / $single")
  R[herdup-$v$r-$srv]=$(tap_blob_gets); R[herdbytes-$v$r-$srv]=$(tap stats | jq .bytes)
  wait_file "$(blob_path "${DATA[$srv]}" herd_$v$r)" 120
  log "  $srv #$r: single $(f "$single" %.2f) s; herd of $HERD_CLIENTS: slowest $(f "$slowest" %.2f) s, upstream GETs ${R[herdup-$v$r-$srv]}"
}
# herd VARIANT RATE_MIB: the proxy HERD_RUNS times (the median run is reported), distribution once
# (its 32 upstream fetches take long and vary little).
herd() {
  local v=$1 r ratios=() gets=0 med
  tap "rate?mib=$2"
  reset_hwm ${PIDS[P]}
  for r in $(seq "$HERD_RUNS"); do
    herd_once "$v" P "$r"
    ratios+=("${R[herdratio-$v$r-P]}")
    gets=$(max "$gets" "${R[herdup-$v$r-P]}")
  done
  R[rss-herd-$v-P]=$(hwm_mib ${PIDS[P]})
  med=$(median "${ratios[@]}")
  R[herdrun-$v]=1
  for r in $(seq "$HERD_RUNS"); do # the run whose ratio is closest to the median
    if awk "BEGIN {a = ${R[herdratio-$v$r-P]} - $med; b = ${R[herdratio-$v${R[herdrun-$v]}-P]} - $med
      exit !(a * a < b * b)}"; then R[herdrun-$v]=$r; fi
  done
  R[herdratios-$v]=$(printf '%.1f ' "${ratios[@]}"); R[herdmaxgets-$v]=$gets
  reset_hwm ${PIDS[D]}
  herd_once "$v" D 1
  R[rss-herd-$v-D]=$(hwm_mib ${PIDS[D]})
  if [[ $PPROF == 1 ]]; then
    curl -sf -o "$OUT/proxy-herd-$v-heap.pprof" "http://127.0.0.1:$P_DEBUG/debug/pprof/heap" || true
  fi
}
log "thundering herd: $HERD_CLIENTS clients, cold $HERD_MIB MiB, upstream at $RATE_MIB MiB/s"
herd t "$RATE_MIB"
log "thundering herd: $HERD_CLIENTS clients, cold $HERD_MIB MiB, upstream unthrottled"
herd u 0

# ---- 5. whole image pull with crane -------------------------------------------------------
crane_pull() { # NAME BASE_URL TAG: prints seconds
  local dir=$TMP/pull/$1 t0 t1
  rm -rf "$dir"; mkdir -p "$TMP/pull"
  t0=$(date +%s.%N)
  timeout 300 "$CRANE" pull --insecure --format=oci "${2#http://}/bench/image:$3" "$dir" 2>>"$TMP/logs/crane.log" ||
    die "crane pull $1 failed (see logs/crane.log)"
  t1=$(date +%s.%N)
  rm -rf "$dir"
  calc "$t1 - $t0"
}
log "image pull with crane ($IMAGE_LAYERS x $IMAGE_LAYER_MIB MiB layers, upstream unthrottled): median of $IMAGES cold, best of $REPEAT warm"
reset_hwm ${PIDS[P]} ${PIDS[D]}
for srv in U P D; do
  times=()
  for i in $(seq 0 $((IMAGES - 1))); do times+=("$(crane_pull "cold-$srv-$i" "${BASE[$srv]}" "t$i")"); done
  R[img-cold-$srv]=$(median "${times[@]}")
  sleep 1 # let the caches commit
  best=
  for rep in $(seq "$REPEAT"); do
    t=$(crane_pull "warm-$srv-$rep" "${BASE[$srv]}" t0)
    if [[ -z $best ]] || awk "BEGIN {exit !($t < $best)}"; then best=$t; fi
  done
  R[img-warm-$srv]=$best
  log "  $srv: cold $(printf '%.2f ' "${times[@]}")s, warm best $(f "$best" %.2f) s"
done
for srv in P D; do R[rss-img-$srv]=$(hwm_mib ${PIDS[$srv]}); done

# ---- 6. a cluster: 3 replicas on S3 vs 1 replica on disk (issue 9) -------------------------------
# Three processes of the same binary, each with its own state directory, on one versitygw
# bucket (posix backend) and one redis-server; no load balancer: clients are spread
# round-robin over the replicas (get with one URL per replica). The disk side is the proxy
# of the scenarios above.
cluster_start() {
  local i
  mkdir -p "$TMP/s3" "$TMP/redis"
  start s3 "$VERSITYGW" --access "$S3_KEY" --secret "$S3_SECRET" --region us-east-1 \
    --port "127.0.0.1:$S3_PORT" --quiet posix "$TMP/s3"
  start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis"
  wait_port "$S3_PORT" 30; wait_port "$REDIS_PORT" 10
  curl -sf -X PUT --aws-sigv4 aws:amz:us-east-1:s3 --user "$S3_KEY:$S3_SECRET" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3/cache" >/dev/null ||
    die "versitygw: cannot create the bucket (see logs/s3.log)"
  for i in "${!R_PORTS[@]}"; do
    proxy_config "${R_PORTS[$i]}" "s3:$TMP/replica$i" 0s >"$TMP/replica$i.yml"
    start "replica$i" "$BIN/proxy" serve "$TMP/replica$i.yml"
  done
  for i in "${!R_PORTS[@]}"; do wait_http "http://127.0.0.1:${R_PORTS[$i]}/v2/" 30; done
}
# urls SERVER BLOB: the blob's URL on each replica (S) or on the disk proxy (P).
urls() {
  local p
  if [[ $1 == P ]]; then blob_url "$P" "$2"; return; fi
  for p in "${R_PORTS[@]}"; do blob_url "http://127.0.0.1:$p" "$2"; done
}
cluster_pids() { local i; for i in "${!R_PORTS[@]}"; do echo "${PID[replica$i]}"; done; echo "${PID[s3]}"; }
# cluster_warm: fill the blob through replica 0 and the disk proxy (verified), check a hit
# on every replica goes nowhere upstream, then REPEAT paired rounds of CLUSTER_CONC clients.
cluster_warm() {
  local b=cl_warm sum=${DIG[cl_warm]#sha256:} c=$CLUSTER_CONC s=$CLUSTER_MIB rounds rep srv out ratios=()
  get "fill-S-$b" -c 1 -sha256 "$sum" "$(urls S $b | head -1)" >/dev/null
  get "fill-P-$b" -c 1 -sha256 "$sum" "$(urls P $b)" >/dev/null
  wait_file "$(blob_path "$S3_DATA" $b)" 120; wait_file "$(blob_path "$P_DATA" $b)" 120
  sync
  tap reset
  get "hit-S-$b" -c "${#R_PORTS[@]}" -sha256 "$sum" $(urls S $b) >/dev/null
  [[ $(tap_blob_gets) == 0 ]] || log "WARNING: a warm blob GET of the cluster went upstream"
  pin "$SERVER_CPUS" $(cluster_pids) ${PIDS[P]}
  rounds=$(( (MIN_RUN_MIB + c * s - 1) / (c * s) ))
  R[clwarm-S]=0; R[clwarm-P]=0
  for rep in $(seq "$REPEAT"); do
    declare -A rate=()
    for srv in S P; do
      out=$(get "warm-cluster-$srv-$rep" $CLIENT_PIN -c "$c" -n "$rounds" -size "${SIZE[$b]}" $(urls $srv $b))
      rate[$srv]=$(jq .mib_s <<<"$out"); R[clwarm-$srv]=$(max "${rate[$srv]}" "${R[clwarm-$srv]}")
    done
    ratios+=("$(calc "${rate[S]} / ${rate[P]}")")
  done
  pin "0-$((NCPU - 1))" $(cluster_pids) ${PIDS[P]}
  R[clwarmratio]=$(median "${ratios[@]}")
  log "  warm $s MiB c=$c: 3×S3 $(f "${R[clwarm-S]}" %.0f), 1×disk $(f "${R[clwarm-P]}" %.0f) MiB/s; paired 3×S3/1×disk $(printf '%.2f ' "${ratios[@]}")"
}
# cluster_cold N: N clients at once (round-robin over the replicas) GET a cold COLD_MIB
# blob with the upstream at RATE_MIB; the slowest client's total time and the upstream GETs.
cluster_cold() {
  local n=$1 srv b out
  tap "rate?mib=$RATE_MIB"
  for srv in S P; do
    b=cl_cold${n}_$srv
    tap reset
    out=$(get "cold$n-cluster-$srv" -c "$n" -sha256 "${DIG[$b]#sha256:}" $(urls $srv $b))
    R[clcold$n-$srv]=$(jq .max_s <<<"$out"); R[clcoldup$n-$srv]=$(tap_blob_gets)
  done
  tap "rate?mib=0"
  R[clcoldratio$n]=$(calc "${R[clcold$n-S]} / ${R[clcold$n-P]}")
  log "  cold $COLD_MIB MiB, $n client(s): 3×S3 $(f "${R[clcold$n-S]}" %.2f) s (${R[clcoldup$n-S]} upstream GETs), 1×disk $(f "${R[clcold$n-P]}" %.2f) s (${R[clcoldup$n-P]})"
}
if [[ $CLUSTER == 1 ]]; then
  log "cluster: 3 replicas on S3 (versitygw, redis-server) vs 1 on disk"
  cluster_start
  cluster_warm
  cluster_cold 1
  cluster_cold 3
fi

# ---- table ---------------------------------------------------------------------------------
ok() { if awk "BEGIN {exit !($1)}"; then echo "✓"; else echo "✗"; fi; }
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
{
  echo "ocimirror proxy $PROXY_VERSION vs distribution $REGISTRY_VERSION proxy mode vs nginx $(nginx -v 2>&1 | sed 's|.*/||') sendfile;"
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -r);"
  echo "loopback, Go clients (bench/cmd/get); warm blobs: ${PIN_NOTE:-servers and client unpinned}; \"throttled\" = upstream held to $RATE_MIB MiB/s in total."
  echo "Warm ratios are medians of per-round ratios (each round runs proxy, nginx, distribution back to back)."
  echo
  row scenario proxy "distribution proxy" "nginx / direct" ratio target
  row --- ---: ---: ---: ---: ---
  for s in $WARM_MIB; do
    for c in $CONC; do
      p=${R[warm-$s-$c-P]} d=${R[warm-$s-$c-D]} n=${R[warm-$s-$c-N]}
      r=${R[warmratio-$s-$c-P]}
      row "warm $s MiB, c=$c (MiB/s, best of $REPEAT)" "$(f "$p" %.0f)" "$(f "$d" %.0f)" "$(f "$n" %.0f) nginx" \
        "$(f "$r" %.2f)× nginx (dist $(f "${R[warmratio-$s-$c-D]}" %.2f)×)" "≥ 0.95× $(ok "$r >= 0.95")"
    done
  done
  row "warm blobs: CPU s per GiB served" "$(f "${R[cpu-P]}" %.2f)" "$(f "${R[cpu-D]}" %.2f)" "$(f "${R[cpu-N]}" %.2f) nginx" \
    "$(f "$(calc "${R[cpu-P]} / ${R[cpu-N]}")" %.1f)× nginx" "—"
  p=${R[man-P]} d=${R[man-D]}
  row "warm manifest by tag, wrk c=$WRK_CONNS ${WRK_SECONDS}s (req/s)" "$(f "$p" %.0f)" "$(f "$d" %.0f)" "—" \
    "$(f "$(calc "$p / $d")" %.1f)× dist" "≥ 5× $(ok "$p >= 5 * $d")"
  row "… upstream requests per client request" "$(f "${R[manup-P]}" %.3f)" "$(f "${R[manup-D]}" %.3f)" "—" "" \
    "≤ 0.1 $(ok "${R[manup-P]} <= 0.1")"
  if [[ -n $TAGFRESHNESS_ALT ]]; then
    row "… proxy with tagfreshness $TAGFRESHNESS_ALT (req/s; upstream/request)" \
      "$(f "${R[man-PF]}" %.0f); $(f "${R[manup-PF]}" %.4f)" "—" "—" "$(f "$(calc "${R[man-PF]} / $d")" %.1f)× dist" \
      "≥ 5× $(ok "${R[man-PF]} >= 5 * $d"), ≤ 0.1 $(ok "${R[manup-PF]} <= 0.1")"
  fi
  p=${R[cold-ttfb-P]} d=${R[cold-ttfb-D]} u=${R[cold-ttfb-U]}
  row "cold $COLD_MIB MiB, upstream $RATE_MIB MiB/s: time to first byte (ms)" "$(f "$p" %.1f)" "$(f "$d" %.1f)" \
    "$(f "$u" %.1f) direct" "$(f "$(calc "$p - $u")" %+.1f) ms vs direct" "≤ +10 ms $(ok "$p - $u <= 10")"
  p=${R[ttfb-med-P]} d=${R[ttfb-med-D]} u=${R[ttfb-med-U]}
  row "… median over $TTFB_N cold 1 MiB blobs (ms)" "$(f "$p" %.1f)" "$(f "$d" %.1f)" \
    "$(f "$u" %.1f) direct" "$(f "$(calc "$p - $u")" %+.1f) ms vs direct" "≤ +10 ms $(ok "$p - $u <= 10")"
  p=${R[cold-total-P]} d=${R[cold-total-D]} u=${R[cold-total-U]}
  row "cold $COLD_MIB MiB, upstream $RATE_MIB MiB/s: total (s)" "$(f "$p" %.2f)" "$(f "$d" %.2f)" \
    "$(f "$u" %.2f) direct" "$(f "$(calc "$p / $u")" %.3f)× direct" "≤ 1.05× $(ok "$p <= 1.05 * $u")"
  for v in t u; do
    if [[ $v == t ]]; then lbl="upstream $RATE_MIB MiB/s"; else lbl="upstream unthrottled"; fi
    mib() { f "$(calc "$1 / 1048576")" %.0f; }
    r=${R[herdrun-$v]}
    row "herd $HERD_CLIENTS × cold $HERD_MIB MiB, $lbl: upstream GETs (MiB fetched)" \
      "${R[herdup-$v$r-P]} ($(mib "${R[herdbytes-$v$r-P]}"))" "${R[herdup-${v}1-D]} ($(mib "${R[herdbytes-${v}1-D]}"))" "—" \
      "proxy most in $HERD_RUNS runs: ${R[herdmaxgets-$v]}" "= 1 $(ok "${R[herdmaxgets-$v]} == 1")"
    p=${R[herdratio-$v$r-P]} d=${R[herdratio-${v}1-D]}
    row "… slowest of $HERD_CLIENTS / single cold client (s; proxy: median of $HERD_RUNS runs)" \
      "$(f "${R[herd-$v$r-P]}" %.2f) / $(f "${R[single-$v$r-P]}" %.2f)" \
      "$(f "${R[herd-${v}1-D]}" %.2f) / $(f "${R[single-${v}1-D]}" %.2f)" "—" \
      "$(f "$p" %.1f)× (runs: ${R[herdratios-$v]% }; dist $(f "$d" %.1f)×)" "≤ 1.5× $(ok "$p <= 1.5")"
  done
  for s in $WARM_MIB; do
    row "peak RSS, warm $s MiB at c≤${CONC##* } (MiB)" "${R[rss-warm-$s-P]}" "${R[rss-warm-$s-D]}" "${R[rss-warm-$s-N]} nginx" "" \
      "< 100 $(ok "${R[rss-warm-$s-P]} < 100")"
  done
  row "peak RSS, manifests under wrk (MiB)" "${R[rss-man-P]}" "${R[rss-man-D]}" "—" "" ""
  row "peak RSS, cold $COLD_MIB MiB pull (MiB)" "${R[rss-cold-P]}" "${R[rss-cold-D]}" "—" "" ""
  row "peak RSS, herd $HERD_CLIENTS × $HERD_MIB MiB throttled / unthrottled (MiB)" \
    "${R[rss-herd-t-P]} / ${R[rss-herd-u-P]}" "${R[rss-herd-t-D]} / ${R[rss-herd-u-D]}" "—" "" \
    "< 100 $(ok "${R[rss-herd-t-P]} < 100 && ${R[rss-herd-u-P]} < 100")"
  row "peak RSS, image pulls (MiB)" "${R[rss-img-P]}" "${R[rss-img-D]}" "—" "" ""
  for k in cold warm; do
    p=${R[img-$k-P]} d=${R[img-$k-D]} u=${R[img-$k-U]}
    if [[ $k == cold ]]; then lbl="median of $IMAGES"; else lbl="best of $REPEAT"; fi
    row "crane pull, $IMAGE_LAYERS × $IMAGE_LAYER_MIB MiB layers, $k, $lbl (s)" "$(f "$p" %.2f)" "$(f "$d" %.2f)" \
      "$(f "$u" %.2f) direct" "$(f "$(calc "$p / $d")" %.2f)× dist" "—"
  done
  if [[ $CLUSTER == 1 ]]; then
    hits="hits streamed by the replicas"; [[ $CLUSTER_REDIRECT != 1 ]] || hits="hits 307 to versitygw"
    row "3 replicas on S3 (versitygw; $hits) vs 1 on disk: warm $CLUSTER_MIB MiB, c=$CLUSTER_CONC round-robin (MiB/s, best of $REPEAT)" \
      "$(f "${R[clwarm-S]}" %.0f) 3×S3 / $(f "${R[clwarm-P]}" %.0f) 1×disk" "—" "—" "$(f "${R[clwarmratio]}" %.2f)× 1×disk" "—"
    for n in 1 3; do
      who="1 client (replica 0)"; [[ $n == 1 ]] || who="$n clients, one per replica"
      row "… cold $COLD_MIB MiB, upstream $RATE_MIB MiB/s, $who: slowest total (s; upstream GETs)" \
        "$(f "${R[clcold$n-S]}" %.2f) (${R[clcoldup$n-S]}) 3×S3 / $(f "${R[clcold$n-P]}" %.2f) (${R[clcoldup$n-P]}) 1×disk" \
        "—" "—" "$(f "${R[clcoldratio$n]}" %.2f)× 1×disk" "—"
    done
  fi
} >"$OUT/results.md"
cat "$OUT/results.md"
log "done: $OUT/results.md (raw data in $OUT/raw, server logs in $OUT/logs)"
