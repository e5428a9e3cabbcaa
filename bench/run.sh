#!/usr/bin/env bash
# Benchmark buildset-registry against distribution (Debian's docker-registry)
# under the same client load, on loopback.
#
#   bash bench/run.sh PATH_TO_BUILDSET_REGISTRY_BINARY
#
# Environment: BENCH_SIZE_MB (blob size, default 1024), BENCH_DURATION
# (seconds per ab/wrk run, default 10). Prints a table and writes the same
# table as markdown to bench/results.md next to this script.
#
# Run as root, it also measures a pull with the kernel's page cache emptied
# first (/proc/sys/vm/drop_caches), as for a blob not read lately.
#
# A second section runs both servers again with TLS (a throwaway CA made
# here) and authentication as each is deployed: ours with bearer tokens,
# distribution with htpasswd, whose clients send Basic auth every time.
#
# A third section measures pull-through: a plain distribution holds the blob
# as the upstream, and each server in turn, on fresh storage, runs as a cache
# in front of it (ours with an upstream, distribution in proxy mode): cold and
# warm pulls, then CONC_N concurrent cold pulls of one blob, counting how often
# the upstream was asked for it.
set -euo pipefail
shopt -s inherit_errexit   # so die inside $(...) stops the whole script

OURS_BIN=${1:?usage: bash bench/run.sh PATH_TO_BUILDSET_REGISTRY_BINARY}
THEIRS_BIN=${DISTRIBUTION_BIN:-docker-registry}
SIZE_MB=${BENCH_SIZE_MB:-1024}
DURATION=${BENCH_DURATION:-10}
SIZE=$((SIZE_MB * 1024 * 1024))
CHUNK_MB=16
OUT_MD="$(cd "$(dirname "$0")" && pwd)/results.md"
OCTET='Content-Type: application/octet-stream'
OCI_MANIFEST='application/vnd.oci.image.manifest.v1+json'
PY=/usr/bin/python3   # standard library only (json, ssl)
USER_PASS=bench:benchpass
IDLE_CONNS=200
CONC_N=16          # concurrent cold pulls through each pull-through cache
PULL_TIMEOUT=300   # s per GET in the pull-through section: a stall fails the run

die() { echo "bench: error: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
now_ns() { date +%s%N; }
for tool in curl ab wrk openssl sha256sum split htpasswd base64 "$THEIRS_BIN" "$PY"; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -x $OURS_BIN ]] || die "not executable: $OURS_BIN"

WORK=$(mktemp -d /tmp/bench.XXXXXX)
declare -A PID=() URL=()
# Stop one server: SIGTERM, up to 3 s to exit, then SIGKILL (a safety net,
# so a hung server cannot hang the benchmark). Always reaps the child.
stop_pid() {
    local pid=$1 i state
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || true)
        [[ -z $state || $state == Z ]] && break
        sleep 0.05
    done
    if [[ -n $state && $state != Z ]]; then
        note "pid $pid ignored SIGTERM for 3 s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local name
    for name in "${!PID[@]}"; do stop_pid "${PID[$name]}"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # so the EXIT trap runs on ^C too

# A port nobody answers on; bounded number of tries.
free_port() {
    local i p
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "no free port found"
}

# write_config NAME PORT ROOT [MODE] -> path of a config file for that server.
# MODE tls: the certificate from make_certs and authentication for USER_PASS.
# MODE pull: a pull-through cache of the server at URL[upstream].
# MODE upstream: distribution with its access log on, to count blob fetches.
write_config() {
    local name=$1 port=$2 root=$3 mode=${4:-} cfg="$WORK/$1-$2.yml" accesslog_off=true
    if [[ $name == ours && $mode == tls ]]; then
        cat >"$cfg" <<EOF
registry:
  address: 127.0.0.1
  port: $port
  public-url: https://127.0.0.1:$port
  tls-cert: $WORK/tls/server-chain.pem
  tls-key: $WORK/tls/server.key
  secret: bench-secret
  users:
    - name: ${USER_PASS%%:*}
      pass: ${USER_PASS#*:}
      access: write
  upstreams: []
  storage:
    driver: filesystem
    root: $root
EOF
    elif [[ $name == ours && $mode == pull ]]; then
        # The first upstream is the default one, so bench/... is fetched from it as bench/...
        cat >"$cfg" <<EOF
registry:
  address: 127.0.0.1
  port: $port
  upstreams:
    - name: upstream.test
      url: ${URL[upstream]}
  storage:
    driver: filesystem
    root: $root
EOF
    elif [[ $name == ours ]]; then
        # No upstream: distribution here is no pull-through cache either, and nothing may leave loopback.
        printf 'registry:\n  address: 127.0.0.1\n  port: %s\n  upstreams: []\n  storage:\n    driver: filesystem\n    root: %s\n' \
            "$port" "$root" >"$cfg"
    elif [[ $mode == tls ]]; then
        cat >"$cfg" <<EOF
version: 0.1
log: {accesslog: {disabled: true}, level: error}
storage:
  filesystem: {rootdirectory: $root}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http:
  addr: "127.0.0.1:$port"
  tls: {certificate: $WORK/tls/server-chain.pem, key: $WORK/tls/server.key}
auth:
  htpasswd: {realm: bench, path: $WORK/tls/htpasswd}
EOF
    else
        # Logging off and upload purging off so neither costs distribution time;
        # only the upstream logs requests (to stdout, which start_server sends
        # to its log file), as counting its blob fetches needs them.
        [[ $mode == upstream ]] && accesslog_off=false
        cat >"$cfg" <<EOF
version: 0.1
log: {accesslog: {disabled: $accesslog_off}, level: error}
storage:
  filesystem: {rootdirectory: $root}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: "127.0.0.1:$port"}
EOF
        # Proxy mode: a read-only cache of the upstream; it refuses pushes.
        if [[ $mode == pull ]]; then echo "proxy: {remoteurl: \"${URL[upstream]}\"}" >>"$cfg"; fi
    fi
    echo "$cfg"
}

# start_server NAME TAG [MODE] -> sets PID[NAME], URL[NAME] and START_LAST (ms).
# NAME ours is our binary, any other name a distribution. MODE as for
# write_config. Storage is $WORK/store-NAME-TAG, so the same TAG restarts a
# server on what it stored before.
# Not called in $(...): the PID must be known to this shell for cleanup.
start_server() {
    local name=$1 tag=$2 mode=${3:-} port root cfg t0 t1 i scheme=http probe=()
    port=$(free_port); root="$WORK/store-$name-$tag"; mkdir -p "$root"
    cfg=$(write_config "$name" "$port" "$root" "$mode")
    # With TLS, /v2/ answers 200 only to credentials, and curl gets that far
    # only if the certificate verifies against our CA: readiness checks both.
    if [[ $mode == tls ]]; then scheme=https; probe=(--cacert "$WORK/tls/ca.pem" -u "$USER_PASS"); fi
    t0=$(now_ns)
    if [[ $name == ours ]]; then
        "$OURS_BIN" serve -c "$cfg" 2>>"$WORK/$name.log" >&2 &
    else
        "$THEIRS_BIN" serve "$cfg" 2>>"$WORK/$name.log" >&2 &
    fi
    PID[$name]=$!
    URL[$name]="$scheme://127.0.0.1:$port"
    # Poll every 5 ms, for at most 10 s (2000 tries).
    for ((i = 0; i < 2000; i++)); do
        if [[ $(curl -s "${probe[@]}" -o /dev/null -w '%{http_code}' "${URL[$name]}/v2/") == 200 ]]; then
            t1=$(now_ns); START_LAST=$(((t1 - t0) / 1000000)); return
        fi
        kill -0 "${PID[$name]}" 2>/dev/null || { tail -5 "$WORK/$name.log" >&2; die "$name exited at start"; }
        sleep 0.005
    done
    tail -5 "$WORK/$name.log" >&2
    # Once more with curl errors shown, so a TLS or auth failure says why.
    curl -sS "${probe[@]}" -o /dev/null -w 'last answer on /v2/: %{http_code}\n' "${URL[$name]}/v2/" >&2 || true
    die "$name did not answer 200 on /v2/ within 10 s"
}

stop_server() { stop_pid "${PID[$1]}"; unset "PID[$1]"; }

# Extra curl options for the server being talked to (CA file, Authorization
# header); empty in the plain-HTTP section. Set by use_server.
CURL_OPTS=()
# Run curl, keep response headers in $WORK/h; echo the status code.
req() { curl -sS "${CURL_OPTS[@]}" -D "$WORK/h" -o /dev/null -w '%{http_code}' "$@"; }
header() { grep -i "^$1:" "$WORK/h" | tail -1 | cut -d' ' -f2- | tr -d '\r'; }

# Location may be relative (ours) or absolute (distribution).
next_location() {
    local base=$1 loc
    loc=$(header Location)
    [[ -n $loc ]] || die "no Location header in response"
    [[ $loc == http* ]] && echo "$loc" || echo "$base$loc"
}
with_digest() { [[ $1 == *\?* ]] && echo "$1&digest=$2" || echo "$1?digest=$2"; }

start_upload() {   # start_upload BASE REPO -> upload location
    local code
    code=$(req -X POST -H 'Content-Length: 0' "$1/v2/$2/blobs/uploads/")
    [[ $code == 202 ]] || die "POST upload to $1 gave $code, not 202"
    next_location "$1"
}

# Monolithic push: POST, then one PUT with the whole body. Echo elapsed ns.
push_monolithic() {
    local base=$1 repo=$2 file=$3 digest=$4 loc code t0 t1
    t0=$(now_ns)   # timed from the POST, like the chunked push
    loc=$(start_upload "$base" "$repo")
    # -T streams the file; 'Expect:' stops curl waiting for a 100 Continue.
    code=$(req -X PUT -H "$OCTET" -H 'Expect:' -T "$file" "$(with_digest "$loc" "$digest")")
    t1=$(now_ns)
    [[ $code == 201 ]] || die "monolithic PUT to $base gave $code, not 201"
    echo $((t1 - t0))
}

# Chunked push, as containerd and buildkit do it: one client on one keep-alive
# connection POSTs, PATCHes each chunk to the latest Location, and ends with
# an empty PUT. A curl per chunk would time process starts, not the server.
# write_chunked_client writes the client; push_chunked echoes elapsed ns.
write_chunked_client() {
    cat >"$WORK/chunked.py" <<'EOF'
import http.client, os, sys, time, urllib.parse
base, repo, chunk_dir, digest = sys.argv[1:5]
url = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
def call(method, path, status, body=b"", headers={}):
    conn.request(method, path, body=body, headers={"Content-Length": str(len(body)), **headers})
    response = conn.getresponse()
    response.read()
    if response.status != status:
        sys.exit(f"{method} {path} gave {response.status}, not {status}")
    location = urllib.parse.urlsplit(urllib.parse.urljoin(base + path, response.getheader("Location", "")))
    return location.path + ("?" + location.query if location.query else "")
files = sorted(os.listdir(chunk_dir))
buffer = bytearray(os.path.getsize(os.path.join(chunk_dir, files[0])))   # one buffer, reused
start = time.monotonic_ns()
location = call("POST", f"/v2/{repo}/blobs/uploads/", 202)
offset = 0
for name in files:
    with open(os.path.join(chunk_dir, name), "rb", buffering=0) as f:
        length = f.readinto(buffer)
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + length - 1}"}
    location = call("PATCH", location, 202, memoryview(buffer)[:length], headers)
    offset += length
location = call("PUT", location + ("&" if "?" in location else "?") + "digest=" + digest, 201)
print(time.monotonic_ns() - start)
EOF
}

push_chunked() {   # push_chunked BASE REPO DIR DIGEST
    "$PY" "$WORK/chunked.py" "$@" || die "chunked push to $1 failed"
}

verify_blob() {   # HEAD must say 200 and the exact size
    local code
    code=$(req -I "$1/v2/$2/blobs/$3")
    [[ $code == 200 && $(header Content-Length) == "$4" ]] ||
        die "HEAD $1/v2/$2/blobs/$3 gave $code, length '$(header Content-Length)', want 200 and $4"
}

# get_ns URL [BYTES]: one GET, which must answer 200 with BYTES (default
# SIZE) bytes; echo elapsed ns. --max-time so a stalled server fails the run
# instead of hanging it.
get_ns() {
    local t0 t1 got
    t0=$(now_ns)
    got=$(curl -sS --max-time "$PULL_TIMEOUT" "${CURL_OPTS[@]}" -o /dev/null \
        -w '%{http_code} %{size_download}' "$1") || die "GET $1 failed (got '$got')"
    t1=$(now_ns)
    [[ $got == "200 ${2:-$SIZE}" ]] || die "GET $1 gave status and size '$got', want '200 ${2:-$SIZE}'"
    echo $((t1 - t0))
}

pull_ns() {   # pull_ns URL [BYTES]: best of two GETs
    local best=0 i ns
    for i in 1 2; do
        ns=$(get_ns "$1" "${2:-$SIZE}")
        ((best == 0 || ns < best)) && best=$ns
    done
    echo "$best"
}

mbps() { awk -v b="${2:-$SIZE}" -v ns="$1" 'BEGIN { printf "%.0f", b / (ns / 1e9) / 1e6 }'; }   # mbps NS [BYTES]
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# check_sha URL DIGEST: an untimed GET whose body must hash to DIGEST, so a
# cache that serves the right size but wrong bytes is caught.
check_sha() {
    local got
    got=$(curl -sS --max-time "$PULL_TIMEOUT" "${CURL_OPTS[@]}" "$1" | sha256sum | cut -d' ' -f1) ||
        die "GET $1 for its SHA-256 failed"
    [[ "sha256:$got" == "$2" ]] || die "GET $1 gave a body with SHA-256 $got, want ${2#sha256:}"
}

# push_small BASE REPO FILE: monolithic push of a small blob, echoes its digest.
push_small() {
    local d; d="sha256:$(sha_of "$3")"
    push_monolithic "$1" "$2" "$3" "$d" >/dev/null
    echo "$d"
}

push_manifest() {   # a one-layer OCI image manifest tagged latest
    local base=$1 cfgd layd code
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/config.json"
    head -c 4096 /dev/urandom >"$WORK/layer.bin"
    cfgd=$(push_small "$base" bench "$WORK/config.json")
    layd=$(push_small "$base" bench "$WORK/layer.bin")
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":4096}]}' \
        "$OCI_MANIFEST" "$cfgd" "$(stat -c %s "$WORK/config.json")" "$layd" >"$WORK/manifest.json"
    code=$(req -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary @"$WORK/manifest.json" "$base/v2/bench/manifests/latest")
    [[ $code == 201 ]] || die "manifest PUT to $base gave $code, not 201"
}

# head_rps URL [AB_OPTION...]: ab -t alone caps at 50000 requests, so raise
# -n after it. ab takes the URL last.
head_rps() {
    local out
    out=$(ab -k -i -c 8 -t "$DURATION" -n 100000000 "${@:2}" "$1" 2>&1) || { echo "$out" >&2; die "ab failed on $1"; }
    grep -q '^Non-2xx' <<<"$out" && note "ab: non-2xx answers on $1: $(grep '^Non-2xx' <<<"$out")"
    grep -q '^Keep-Alive requests:[[:space:]]*0$' <<<"$out" && note "ab: no keep-alive on $1"
    grep -E '^Failed requests:' <<<"$out" | grep -qv ' 0$' && note "ab: $(grep '^Failed' <<<"$out") on $1"
    awk '/^Requests per second/ { printf "%.0f", $4 }' <<<"$out"
}

get_rps() {   # get_rps URL [WRK_OPTION...]
    local out
    out=$(wrk -t 2 -c 8 -d "${DURATION}s" -H "Accept: $OCI_MANIFEST" "${@:2}" "$1" 2>&1) || { echo "$out" >&2; die "wrk failed on $1"; }
    grep -qE 'Non-2xx|Socket errors' <<<"$out" && note "wrk on $1: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')"
    awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out"
}

peak_rss_mib() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# ---- TLS and authentication helpers -----------------------------------------
# openssl with its chatter kept in a log that is shown only if it fails.
ossl() {
    openssl "$@" 2>>"$WORK/tls/openssl.log" || { tail -5 "$WORK/tls/openssl.log" >&2; die "openssl $1 failed"; }
}

# A throwaway CA and a server certificate for IP 127.0.0.1 signed by it, in
# $WORK/tls. RSA 2048, the usual default, so handshakes cost what they
# usually do. The chain file is the server certificate followed by the CA.
make_certs() {
    local d="$WORK/tls"
    mkdir -p "$d"
    ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$d/ca.key" -out "$d/ca.pem"
    ossl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/server.key" -out "$d/server.csr"
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
        extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1 >"$d/server.ext"
    ossl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/server.ext" -out "$d/server.pem"
    ossl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null
    cat "$d/server.pem" "$d/ca.pem" >"$d/server-chain.pem"
}

# use_server NAME: CURL_OPTS gets our CA and NAME's Authorization header;
# use_server with no NAME clears them again.
use_server() {
    CURL_OPTS=()
    if [[ -n ${1:-} ]]; then CURL_OPTS=(--cacert "$WORK/tls/ca.pem" -H "Authorization: ${AUTH[$1]}"); fi
}

# fetch_token BASE -> a token for pull and push on repository bench, asked for
# once as a docker client does; the load runs then reuse it on every request.
fetch_token() {
    local base=$1 body
    body=$(curl -sS --cacert "$WORK/tls/ca.pem" -u "$USER_PASS" \
        "$base/auth/token?service=${base#https://}&scope=repository:bench:pull,push") || die "token request to $base failed"
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["token"])' <<<"$body" 2>/dev/null ||
        die "no token in the answer from $base: $body"
}

# Ours allows anonymous pulls with only a write user, but checks any
# Authorization header it is sent; distribution checks it on every request.
# So a wrong credential must be refused, or the load runs would not measure
# the check: ours gets a token with a broken signature, distribution a wrong
# password.
check_auth_enforced() {   # check_auth_enforced NAME URL
    local code bad
    if [[ $1 == ours ]]; then
        bad="${AUTH[ours]%.*}.$(printf 'A%.0s' {1..43})"   # an all-zero HMAC
    else
        bad="Basic $(printf '%s' bench:wrong | base64 -w0)"
    fi
    code=$(curl -sS --cacert "$WORK/tls/ca.pem" -H "Authorization: $bad" -o /dev/null -w '%{http_code}' -I "$2")
    [[ $code == 401 ]] || die "$1 answered $code, not 401, to a wrong credential on HEAD $2"
}

# The idle client: hold N TLS connections, handshaken (and the certificate
# verified, as a real client would) and then silent, until DONE exists or
# 30 s pass; then print how many the server has not closed meanwhile.
write_idle_client() {
    cat >"$WORK/idle.py" <<'EOF'
import os, socket, ssl, sys, time
port, ca, n, ready, done = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
conns = []
for _ in range(n):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conns.append(ctx.wrap_socket(raw, server_hostname="127.0.0.1"))
open(ready, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(done) and time.monotonic() < deadline:
    time.sleep(0.05)
alive = 0
for c in conns:
    c.setblocking(False)
    try:
        alive += len(c.recv(1)) > 0   # b"" is the server's close
    except ssl.SSLWantReadError:      # nothing to read: still open
        alive += 1
    except OSError:                   # reset or TLS error: closed
        pass
print(alive)
EOF
}

# idle_tls_rss NAME -> sets IDLE_RSS[NAME]: NAME's VmRSS in MiB while
# IDLE_CONNS idle TLS connections to it are open. Not called in $(...): the
# client's PID must be known to this shell for cleanup.
idle_tls_rss() {
    local name=$1 i alive before port=${URL[$1]##*:}
    before=$(rss_mib "${PID[$name]}")   # for the log: what the connections add
    rm -f "$WORK/idle.ready" "$WORK/idle.done"
    "$PY" "$WORK/idle.py" "$port" "$WORK/tls/ca.pem" "$IDLE_CONNS" "$WORK/idle.ready" "$WORK/idle.done" \
        >"$WORK/idle.out" 2>"$WORK/idle.log" &
    PID[idle]=$!
    # Every 50 ms for at most 30 s (600 tries); the handshakes take about 1 s.
    for ((i = 0; i < 600; i++)); do
        [[ -e $WORK/idle.ready ]] && break
        kill -0 "${PID[idle]}" 2>/dev/null || { tail -5 "$WORK/idle.log" >&2; die "idle TLS client to $name failed"; }
        sleep 0.05
    done
    [[ -e $WORK/idle.ready ]] || die "$IDLE_CONNS TLS handshakes with $name took over 30 s"
    sleep 2   # hold them a while, so what the server keeps per connection shows
    IDLE_RSS[$name]=$(rss_mib "${PID[$name]}")
    note "$name: VmRSS $before MiB before, ${IDLE_RSS[$name]} MiB with $IDLE_CONNS idle TLS connections"
    touch "$WORK/idle.done"
    wait "${PID[idle]}" || { tail -5 "$WORK/idle.log" >&2; die "idle TLS client to $name failed"; }
    unset "PID[idle]"
    alive=$(cat "$WORK/idle.out")
    ((alive == IDLE_CONNS)) || note "$name closed $((IDLE_CONNS - alive)) of $IDLE_CONNS idle TLS connections while held"
}

# ---- results: rows of metric|ours|theirs|ratio|target|result --------------
ROWS=()
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
judge() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == ">=") ? (v >= t) : (op == "==") ? (v == t) : (v < t); print ok ? "PASS" : "MISS" }'; }
row() { ROWS+=("$1|$2|$3|$4|$5|$6"); }
rate_row() {   # rate_row METRIC OURS THEIRS MIN_RATIO
    local r; r=$(ratio "$2" "$3")
    row "$1" "$2" "$3" "$r" ">= ${4}x" "$(judge "${r%x}" '>=' "$4")"
}

# ---- machine and inputs (all outside any timed section) -------------------
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
LOAD=$(cut -d' ' -f1 /proc/loadavg)
note "machine: $(nproc) cores, $CPU, load average $LOAD; blob ${SIZE_MB} MiB, ${DURATION} s per load run"
awk -v l="$LOAD" 'BEGIN { exit !(l > 0.5) }' && note "warning: the machine is busy, numbers will be noisy"
SHA_MBPS=$(openssl speed -evp sha256 -bytes 65536 -seconds 2 2>/dev/null |
    awk '/^sha256 / { v = $NF; sub(/k$/, "", v); printf "%.0f", v / 1000 }')
[[ -n $SHA_MBPS ]] || die "could not parse openssl speed output"

# ---- start time, on a fresh start of each server (first: fails fast) ----
declare -A START_MS=()
for s in ours theirs; do
    start_server "$s" start
    START_MS[$s]=$START_LAST
    stop_server "$s"
    rm -rf "$WORK/store-$s-start"
done

note "generating blobs"
# Separate random content per push kind so no push finds its blob already stored.
head -c "$SIZE" /dev/urandom >"$WORK/mono.bin"
MONO_D="sha256:$(sha_of "$WORK/mono.bin")"
head -c "$SIZE" /dev/urandom >"$WORK/chunked.bin"
CHUNK_D="sha256:$(sha_of "$WORK/chunked.bin")"
mkdir "$WORK/chunks"
split -b "${CHUNK_MB}M" -a 4 "$WORK/chunked.bin" "$WORK/chunks/c"
write_chunked_client
rm -f "$WORK/chunked.bin"

# The upstream for the pull-through section is seeded now, while mono.bin
# exists, with that blob and a separate quarter-size one for the concurrent
# pulls; then it stops until that section, so it costs the others nothing.
CONC_SIZE=$((SIZE / 4))
CONC_MIB=$(awk -v b="$CONC_SIZE" 'BEGIN { printf "%g", b / 1048576 }')
note "upstream: pushing the blobs for the pull-through section"
start_server upstream seed upstream
push_monolithic "${URL[upstream]}" bench "$WORK/mono.bin" "$MONO_D" >/dev/null
verify_blob "${URL[upstream]}" bench "$MONO_D" "$SIZE"
head -c "$CONC_SIZE" /dev/urandom >"$WORK/conc.bin"
CONC_D="sha256:$(sha_of "$WORK/conc.bin")"
push_monolithic "${URL[upstream]}" bench "$WORK/conc.bin" "$CONC_D" >/dev/null
verify_blob "${URL[upstream]}" bench "$CONC_D" "$CONC_SIZE"
rm -f "$WORK/conc.bin"
stop_server upstream

# ---- everything else, both servers running side by side -------------------
for s in ours theirs; do start_server "$s" main; done
declare -A MONO=() CHUNKED=() RSS=() PULL=() HEADS=() GETS=()
for s in ours theirs; do
    note "$s: monolithic push"
    sync   # so write-back of earlier data does not land in this timed push
    ns=$(push_monolithic "${URL[$s]}" bench "$WORK/mono.bin" "$MONO_D")
    MONO[$s]=$(mbps "$ns")
    RSS[$s]=$(peak_rss_mib "${PID[$s]}")
    verify_blob "${URL[$s]}" bench "$MONO_D" "$SIZE"
done
rm -f "$WORK/mono.bin"
for s in ours theirs; do
    note "$s: chunked push"
    sync
    ns=$(push_chunked "${URL[$s]}" bench-chunked "$WORK/chunks" "$CHUNK_D")
    CHUNKED[$s]=$(mbps "$ns")
    verify_blob "${URL[$s]}" bench-chunked "$CHUNK_D" "$SIZE"
done
rm -rf "$WORK/chunks"
sync
# A blob not read lately comes from the disk: to measure that pull, the page
# cache is emptied first (root only). The best of two after it is the pull of
# a blob the page cache holds, where it holds it.
declare -A FIRST_PULL=()
for s in ours theirs; do
    if [[ -w /proc/sys/vm/drop_caches ]]; then
        note "$s: pull with the page cache emptied first"
        sync
        echo 3 >/proc/sys/vm/drop_caches
        FIRST_PULL[$s]=$(mbps "$(get_ns "${URL[$s]}/v2/bench/blobs/$MONO_D")")
    else
        FIRST_PULL[$s]="n/a"
    fi
    note "$s: pull"
    ns=$(pull_ns "${URL[$s]}/v2/bench/blobs/$MONO_D")
    PULL[$s]=$(mbps "$ns")
    note "$s: HEAD blob load"
    HEADS[$s]=$(head_rps "${URL[$s]}/v2/bench/blobs/$MONO_D")
    note "$s: GET manifest load"
    push_manifest "${URL[$s]}"
    GETS[$s]=$(get_rps "${URL[$s]}/v2/bench/manifests/latest")
done
for s in ours theirs; do
    kill -0 "${PID[$s]}" 2>/dev/null || die "$s died during the benchmark"
    stop_server "$s"
    rm -rf "$WORK/store-$s-main"   # 2 blobs of SIZE each; nothing reads them again
done

# ---- TLS and authentication, both servers side by side -------------------
# Each authenticates as it is deployed: ours verifies a token's HMAC on each
# request, distribution's htpasswd clients send Basic auth, bcrypt each time.
note "TLS: making a throwaway CA and certificate"
make_certs
htpasswd -Bbn "${USER_PASS%%:*}" "${USER_PASS#*:}" >"$WORK/tls/htpasswd"
write_idle_client
head -c 4096 /dev/urandom >"$WORK/tls-blob.bin"
TLS_BLOB_D="sha256:$(sha_of "$WORK/tls-blob.bin")"
for s in ours theirs; do start_server "$s" tls tls; done
declare -A AUTH=() TLS_HEADS=() TLS_GETS=() IDLE_RSS=()
AUTH[ours]="Bearer $(fetch_token "${URL[ours]}")"
AUTH[theirs]="Basic $(printf '%s' "$USER_PASS" | base64 -w0)"
for s in ours theirs; do
    note "$s: TLS push of a blob and a manifest"
    use_server "$s"
    push_small "${URL[$s]}" bench "$WORK/tls-blob.bin" >/dev/null
    verify_blob "${URL[$s]}" bench "$TLS_BLOB_D" 4096
    push_manifest "${URL[$s]}"
    check_auth_enforced "$s" "${URL[$s]}/v2/bench/blobs/$TLS_BLOB_D"
    note "$s: TLS HEAD blob load"
    TLS_HEADS[$s]=$(head_rps "${URL[$s]}/v2/bench/blobs/$TLS_BLOB_D" -H "Authorization: ${AUTH[$s]}")
    note "$s: TLS GET manifest load"
    TLS_GETS[$s]=$(get_rps "${URL[$s]}/v2/bench/manifests/latest" -H "Authorization: ${AUTH[$s]}")
    note "$s: $IDLE_CONNS idle TLS connections"
    idle_tls_rss "$s"
done
use_server
for s in ours theirs; do
    kill -0 "${PID[$s]}" 2>/dev/null || die "$s died during the TLS benchmark"
    stop_server "$s"
done

# ---- pull-through, each cache in turn in front of the same upstream -------
# upstream_gets DIGEST: GET requests for that blob in the upstream's access
# log so far, in the combined format: ... "GET /v2/bench/blobs/DIGEST HTTP/1.1" ...
# A line is written when a request ends, also one cut off midway.
upstream_gets() { grep -c "\"GET /v2/[^ ]*/blobs/$1 HTTP/" "$WORK/upstream.log" || true; }
upstream_heads() { grep -c "\"HEAD /v2/[^ ]*/blobs/$1 HTTP/" "$WORK/upstream.log" || true; }

# stop_cache NAME TAG: stop a cache and drop its storage. Its fetches from the
# upstream then have ended, so the upstream has logged each of them; the short
# wait lets it notice a connection the stop cut.
stop_cache() {
    kill -0 "${PID[$1]}" 2>/dev/null || die "$1 died during the pull-through benchmark"
    stop_server "$1"
    rm -rf "$WORK/store-$1-$2"
    sleep 0.5
}

# concurrent_pulls NAME URL BYTES DIGEST -> sets CONC_LAST (ns from starting
# the first of CONC_N GETs of URL to the end of the last). Each must answer
# 200 with BYTES bytes; the first body is kept on disk to check its SHA-256.
# Not called in $(...): the curls' PIDs must be known to this shell for cleanup.
concurrent_pulls() {
    local name=$1 url=$2 bytes=$3 digest=$4 i t0 t1 out got
    rm -f "$WORK"/conc-*
    t0=$(now_ns)
    for ((i = 1; i <= CONC_N; i++)); do
        out=/dev/null
        if ((i == 1)); then out="$WORK/conc-body"; fi
        curl -sS --max-time "$PULL_TIMEOUT" -o "$out" -w '%{http_code} %{size_download}' "$url" \
            >"$WORK/conc-$i.out" 2>"$WORK/conc-$i.err" &
        PID[conc$i]=$!
    done
    for ((i = 1; i <= CONC_N; i++)); do
        wait "${PID[conc$i]}" || { cat "$WORK/conc-$i.err" >&2; die "$name: concurrent GET $i of $url failed"; }
        unset "PID[conc$i]"
    done
    t1=$(now_ns)
    for ((i = 1; i <= CONC_N; i++)); do
        got=$(cat "$WORK/conc-$i.out")
        [[ $got == "200 $bytes" ]] || die "$name: concurrent GET $i of $url gave status and size '$got', want '200 $bytes'"
    done
    got=$(sha_of "$WORK/conc-body")
    [[ "sha256:$got" == "$digest" ]] || die "$name: concurrent GET 1 of $url gave a body with SHA-256 $got, want ${digest#sha256:}"
    rm -f "$WORK"/conc-*
    CONC_LAST=$((t1 - t0))
}

note "pull-through: restarting the upstream on its seeded storage"
start_server upstream seed upstream
note "upstream: direct pull"
DIRECT=$(mbps "$(pull_ns "${URL[upstream]}/v2/bench/blobs/$MONO_D")")
declare -A COLD=() WARM=() CONC_MS=() CONC_MBPS=() CONC_GETS=()
for s in ours theirs; do
    note "$s: pull-through cold and warm pulls"
    start_server "$s" pull pull
    before=$(upstream_gets "$MONO_D"); before_heads=$(upstream_heads "$MONO_D")
    COLD[$s]=$(mbps "$(get_ns "${URL[$s]}/v2/bench/blobs/$MONO_D")")
    WARM[$s]=$(mbps "$(get_ns "${URL[$s]}/v2/bench/blobs/$MONO_D")")
    check_sha "${URL[$s]}/v2/bench/blobs/$MONO_D" "$MONO_D"
    stop_cache "$s" pull
    note "$s: upstream had $(($(upstream_gets "$MONO_D") - before)) GETs and $(($(upstream_heads "$MONO_D") - before_heads)) HEADs for the blob in the cold, warm and check pulls"

    note "$s: $CONC_N concurrent cold pulls of $CONC_MIB MiB"
    start_server "$s" conc pull
    before=$(upstream_gets "$CONC_D"); before_heads=$(upstream_heads "$CONC_D")
    concurrent_pulls "$s" "${URL[$s]}/v2/bench/blobs/$CONC_D" "$CONC_SIZE" "$CONC_D"
    CONC_MS[$s]=$((CONC_LAST / 1000000))
    CONC_MBPS[$s]=$(mbps "$CONC_LAST" $((CONC_N * CONC_SIZE)))
    stop_cache "$s" conc
    CONC_GETS[$s]=$(($(upstream_gets "$CONC_D") - before))
    note "$s: upstream had ${CONC_GETS[$s]} GETs and $(($(upstream_heads "$CONC_D") - before_heads)) HEADs for the blob in the $CONC_N concurrent pulls"
done
kill -0 "${PID[upstream]}" 2>/dev/null || die "the upstream died during the pull-through benchmark"
stop_server upstream
rm -rf "$WORK/store-upstream-seed"

pct() { awk -v a="$1" -v b="${2:-$SHA_MBPS}" 'BEGIN { printf "%.0f", 100 * a / b }'; }   # pct VALUE [OF]
rate_row "push monolithic (MB/s)" "${MONO[ours]}" "${MONO[theirs]}" 4
row "push monolithic, % of SHA-256" "$(pct "${MONO[ours]}")%" "$(pct "${MONO[theirs]}")%" "-" \
    ">= 70% (ours)" "$(judge "$(pct "${MONO[ours]}")" '>=' 70)"
rate_row "push chunked ${CHUNK_MB} MiB (MB/s)" "${CHUNKED[ours]}" "${CHUNKED[theirs]}" 4
row "push chunked, % of SHA-256" "$(pct "${CHUNKED[ours]}")%" "$(pct "${CHUNKED[theirs]}")%" "-" \
    ">= 70% (ours)" "$(judge "$(pct "${CHUNKED[ours]}")" '>=' 70)"
rate_row "pull (MB/s, best of 2)" "${PULL[ours]}" "${PULL[theirs]}" 1.5
row "pull from disk, page cache emptied (MB/s)" "${FIRST_PULL[ours]}" "${FIRST_PULL[theirs]}" \
    "$(ratio "${FIRST_PULL[ours]}" "${FIRST_PULL[theirs]}")" "-" "-"
rate_row "HEAD blob (req/s, 8 conns)" "${HEADS[ours]}" "${HEADS[theirs]}" 8
rate_row "GET manifest (req/s, 8 conns)" "${GETS[ours]}" "${GETS[theirs]}" 8
row "peak RSS in mono push (MiB)" "${RSS[ours]}" "${RSS[theirs]}" "$(ratio "${RSS[theirs]}" "${RSS[ours]}")" \
    "< 48 MiB (ours)" "$(judge "${RSS[ours]}" '<' 48)"
row "start to first 200 (ms)" "${START_MS[ours]}" "${START_MS[theirs]}" \
    "$(ratio "${START_MS[theirs]}" "${START_MS[ours]}")" "< 100 ms (ours)" "$(judge "${START_MS[ours]}" '<' 100)"
rate_row "TLS+auth HEAD blob (req/s, 8 conns)" "${TLS_HEADS[ours]}" "${TLS_HEADS[theirs]}" 8
rate_row "TLS+auth GET manifest (req/s, 8 conns)" "${TLS_GETS[ours]}" "${TLS_GETS[theirs]}" 8
row "RSS, $IDLE_CONNS idle TLS conns (MiB)" "${IDLE_RSS[ours]}" "${IDLE_RSS[theirs]}" \
    "$(ratio "${IDLE_RSS[theirs]}" "${IDLE_RSS[ours]}")" "-" "-"
# The direct pull is the baseline for both caches, so it fills both columns.
row "upstream direct pull (MB/s, best of 2)" "$DIRECT" "$DIRECT" "-" "-" "-"
row "pull-through cold (MB/s)" "${COLD[ours]}" "${COLD[theirs]}" "$(ratio "${COLD[ours]}" "${COLD[theirs]}")" "-" "-"
row "pull-through cold, % of direct" "$(pct "${COLD[ours]}" "$DIRECT")%" "$(pct "${COLD[theirs]}" "$DIRECT")%" "-" \
    ">= 90% (ours)" "$(judge "$(pct "${COLD[ours]}" "$DIRECT")" '>=' 90)"
row "pull-through warm (MB/s)" "${WARM[ours]}" "${WARM[theirs]}" "$(ratio "${WARM[ours]}" "${WARM[theirs]}")" "-" "-"
row "$CONC_N concurrent cold pulls of $CONC_MIB MiB (wall ms)" "${CONC_MS[ours]}" "${CONC_MS[theirs]}" \
    "$(ratio "${CONC_MS[theirs]}" "${CONC_MS[ours]}")" "-" "-"
row "$CONC_N concurrent cold pulls (aggregate MB/s)" "${CONC_MBPS[ours]}" "${CONC_MBPS[theirs]}" \
    "$(ratio "${CONC_MBPS[ours]}" "${CONC_MBPS[theirs]}")" "-" "-"
row "upstream GETs for the $CONC_N pulls" "${CONC_GETS[ours]}" "${CONC_GETS[theirs]}" \
    "$(ratio "${CONC_GETS[theirs]}" "${CONC_GETS[ours]}")" "== 1 (ours)" "$(judge "${CONC_GETS[ours]}" '==' 1)"

HEAD_LINE="metric|buildset-registry|distribution|ratio (higher is better)|target|result"
INFO="$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $CPU (load average $LOAD at start); blob ${SIZE_MB} MiB; load ${DURATION} s per run; single-core SHA-256 ${SHA_MBPS} MB/s"
NOTE="ratio is ours/theirs, except RSS, start time, wall time and upstream GETs (theirs/ours). MB = 10^6 bytes. TLS+auth: RSA 2048 certificate; ours with a bearer token, distribution with htpasswd Basic auth (bcrypt per request). Pull-through: a plain distribution on loopback as the upstream; each cache (ours with an upstream, distribution in proxy mode) on fresh storage; cold is the first GET, warm the second; the concurrent pulls start at once on another fresh cache, and upstream GETs are counted in the upstream's access log."

echo "$INFO"
printf '%s\n' "$HEAD_LINE" "${ROWS[@]}" | column -t -s '|' -o ' | '
echo "$NOTE"

{
    echo "## Benchmark: buildset-registry vs distribution"
    echo
    echo "$INFO"
    echo
    printf '%s\n' "$HEAD_LINE" "${ROWS[@]}" | sed 's/|/ | /g; s/^/| /; s/$/ |/' |
        awk 'NR == 2 { print "|---|---:|---:|---:|---|---|" } { print }'
    echo
    echo "$NOTE"
} >"$OUT_MD"
note "wrote $OUT_MD"
