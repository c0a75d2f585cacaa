#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker + controller) on 127.0.0.1.
#   scripts/kafka.sh fetch    resolve the pinned release from Maven Central into .kafka/lib
#   scripts/kafka.sh start    fetch if needed, format storage once, start, wait until it answers (idempotent:
#                             returns at once when the broker already answers)
#   scripts/kafka.sh stop     stop it and wait until the process is gone
#   scripts/kafka.sh status   exit 0 when the broker answers
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_STATE_DIR (.kafka), KAFKA_HEAP (-Xmx1g).
# KAFKA_SECURE=1 adds a SASL_SSL listener (SCRAM-SHA-512 and PLAIN) on KAFKA_PORT+2 and an SSL listener that
# requires client certificates on KAFKA_PORT+3; the CA, keystore and per-principal credentials are generated
# by scripts/kafka_tls.py (KAFKA_PYTHON, default .venv/bin/python) into $KAFKA_STATE_DIR/tls-$KAFKA_PORT.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${KAFKA_STATE_DIR:-$root/.kafka}"
port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-9093}"
lib="$state/lib"
data="$state/data-$port"
logs="$state/logs-$port"
pidfile="$state/broker-$port.pid"
props="$state/server-$port.properties"
secure="${KAFKA_SECURE:-0}"
tls="$state/tls-$port"

fetch() {
  if [ -f "$lib/.complete" ]; then return 0; fi
  mkdir -p "$lib"
  echo "kafka: resolving the broker from Maven Central (scripts/kafka/pom.xml) ..." >&2
  mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$lib" -DincludeScope=runtime >&2
  touch "$lib/.complete"
}

answers() {
  # A TCP connect is not enough: the port opens before the broker has joined its controller.
  # kafka-broker-api-versions would need another JVM start (~2 s); the Python probe is cheaper.
  python3 - "$port" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.settimeout(2)
    # ApiVersions v0 request: api_key=18, version=0, correlation_id=1, client_id="probe"
    body = struct.pack(">hhih", 18, 0, 1, 5) + b"probe"
    s.sendall(struct.pack(">i", len(body)) + body)
    head = s.recv(4)
    size = struct.unpack(">i", head)[0]
    resp = b""
    while len(resp) < size:
        chunk = s.recv(size - len(resp))
        if not chunk:
            break
        resp += chunk
    sys.exit(0 if len(resp) >= 6 and struct.unpack(">h", resp[4:6])[0] == 0 else 1)
except Exception:
    sys.exit(1)
PY
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

cluster_id() {
  # 16 random bytes, base64url without padding (what kafka-storage random-uuid prints), kept for the next
  # format. Written whole or not at all: an empty file (seen once in a fresh-clone test run)
  # gave `format -t ""` and a broker that never started; one is replaced, not reused.
  local file="$state/cluster-id"
  if [ ! -s "$file" ]; then
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$file.tmp"
    [ -s "$file.tmp" ] || { echo "kafka: could not generate a cluster id" >&2; exit 1; }
    mv "$file.tmp" "$file"
  fi
  cat "$file"
}

start() {
  mkdir -p "$state"
  # A broker that already answers needs no lock. This also lets a start return while a broker launched by an
  # older copy of this script still holds the lock it inherited.
  if running && answers; then echo "kafka: already running on 127.0.0.1:$port" >&2; return 0; fi
  # Serialise concurrent starts (parallel test sessions, a demo): the loser finds the winner's broker.
  # Bounded, so that a stuck holder is reported instead of waited for forever.
  local lock="$state/start-$port.lock"
  exec 9>"$lock"
  if ! flock -w 180 9; then
    echo "kafka: another start for port $port held $lock for 180 s; is a broker stuck starting? see $logs" >&2
    exit 1
  fi
  if running && answers; then echo "kafka: already running on 127.0.0.1:$port" >&2; return 0; fi
  if answers; then echo "kafka: another broker already answers on 127.0.0.1:$port; not starting a second" >&2; return 0; fi
  fetch
  mkdir -p "$data" "$logs"
  cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
  local scram=()
  if [ "$secure" = 1 ]; then
    "${KAFKA_PYTHON:-$root/.venv/bin/python}" "$root/scripts/kafka_tls.py" "$tls"
    local plain_users="" name
    for name in worker analyst security shipper admin; do
      plain_users="$plain_users user_$name=\"$(cat "$tls/$name.password")\""
      scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$(cat "$tls/$name.password")]")
    done
    sed -i "s#^listeners=.*#listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port,SASL_SSL://127.0.0.1:$((port + 2)),SSL://127.0.0.1:$((port + 3))#; s#^advertised.listeners=.*#advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$((port + 2)),SSL://127.0.0.1:$((port + 3))#; s#^listener.security.protocol.map=.*#listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL#" "$props"
    cat >> "$props" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$(cat "$tls/broker.password")
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
PROPS
    chmod 600 "$props"
  fi
  local cp="$lib/*"
  local jvm=(java ${KAFKA_HEAP:--Xmx1g} -XX:+UseG1GC -Djava.awt.headless=true
             -Dlog4j2.configurationFile="$root/scripts/kafka/log4j2.yaml" -Dkafka.logs.dir="$logs" -cp "$cp")
  if [ ! -f "$data/meta.properties" ]; then
    "${jvm[@]}" kafka.tools.StorageTool format -t "$(cluster_id)" \
      -c "$props" --standalone "${scram[@]}" >"$logs/format.log" 2>&1 || { cat "$logs/format.log" >&2; exit 1; }
  fi
  # 9>&-: the broker must not inherit the lock. It outlives this script, and a lock it held would make every
  # later start wait for the broker to exit.
  nohup "${jvm[@]}" kafka.Kafka "$props" >"$logs/stdout.log" 2>&1 9>&- &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if answers; then echo "kafka: up on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2; return 0; fi
    if ! running; then echo "kafka: broker exited; see $logs" >&2; tail -n 20 "$logs/stdout.log" "$logs/server.log" >&2 || true; exit 1; fi
    sleep 0.5
  done
  echo "kafka: broker did not answer within 60 s; see $logs" >&2
  exit 1
}

stop() {
  if ! running; then rm -f "$pidfile"; echo "kafka: not running" >&2; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  kill "$pid"
  for _ in $(seq 1 60); do
    if ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidfile"; echo "kafka: stopped" >&2; return 0; fi
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka: killed after 30 s" >&2
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running && answers ;;
  *) echo "usage: $0 {fetch|start|stop|status}" >&2; exit 2 ;;
esac
