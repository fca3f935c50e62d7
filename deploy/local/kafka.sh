#!/usr/bin/env bash
# Local Apache Kafka 4.x (KRaft) on 127.0.0.1 for dev, tests, CI and the demo: one broker, or a cluster.
#
#   deploy/local/kafka.sh start|stop|status|fetch             the single broker (default 127.0.0.1:9092)
#   deploy/local/kafka.sh cluster start|stop|status           a cluster of PULSE_KAFKA_NODES brokers (default 3)
#   deploy/local/kafka.sh cluster kill ID                     SIGKILL node ID (1..N), as a crash would
#   deploy/local/kafka.sh cluster start ID | stop ID          start (again) or stop one node
#   deploy/local/kafka.sh secure start|stop|status            one broker whose only client listener is SASL_SSL
#
# Jars come from Maven Central (deploy/local/kafka/pom.xml) into a cache folder
# outside the repo; storage is formatted on first start. start and stop are
# idempotent. Settings (environment):
#   PULSE_KAFKA_HOME   cache + data folder   (default ~/.cache/productpulse/kafka-$KAFKA_VERSION)
#   PULSE_KAFKA_PORT   broker port           (default 9092; controller uses port+1)
#   PULSE_KAFKA_DATA   log (data) folder     (default $PULSE_KAFKA_HOME/data-$PORT)
# Cluster mode (its own ports and folders, so it runs beside the single broker):
#   PULSE_KAFKA_NODES         brokers               (default 3)
#   PULSE_KAFKA_CLUSTER_PORT  node 1's broker port  (default 19092; node i listens on base+2(i-1),
#                             its controller on that +1: 19092/19093, 19094/19095, 19096/19097)
#   PULSE_KAFKA_CLUSTER_DATA  data folder           (default $PULSE_KAFKA_HOME/cluster-$BASE; node i in node-i/)
# Every node is broker and controller (combined KRaft mode), so the controller quorum is
# the same majority as the brokers: losing one of three keeps both; losing two stops
# leader elections until one comes back. Each JVM gets -Xmx512m.
# Secure mode (the security tests; its own ports and folder, beside the others):
#   PULSE_KAFKA_SECURE_PORT      SASL_SSL listener port (default 19192; controller on port+1, PLAINTEXT,
#                                loopback, KRaft quorum only)
#   PULSE_KAFKA_SECURE_DATA      folder (default $PULSE_KAFKA_HOME/secure-$PORT): tls/ (a CA made with keytool,
#                                the broker's PKCS12 keystore and truststore, ca.pem for clients), data/
#   PULSE_KAFKA_SECURE_USER      SCRAM-SHA-512 client user created at format time (default pulse)
#   PULSE_KAFKA_SECURE_PASSWORD  its password (default: random, kept in $PULSE_KAFKA_SECURE_DATA/client.password)
# Brokers talk to each other over the same SASL_SSL listener as user 'broker'. `secure start` prints
# bootstrap=, cafile=, user= and password_file= lines for clients.
set -euo pipefail

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$(dirname "$0")/kafka/pom.xml")
HERE=$(cd "$(dirname "$0")" && pwd)
HOME_DIR=${PULSE_KAFKA_HOME:-$HOME/.cache/productpulse/kafka-$KAFKA_VERSION}
LIBS=$HOME_DIR/libs
HEAP="-Xms256m -Xmx1g"
# The node this invocation acts on; single mode is node 1 of a cluster of one (set_single / set_node).
NODE_ID=1 NODES=1 PORT= CONTROLLER_PORT= DATA= PIDFILE= LOG= CONF= VOTERS= EXTRA=
LISTENER=PLAINTEXT FORMAT_ARGS=()  # the client listener's name (= its protocol); extra StorageTool format options

set_single() {
  PORT=${PULSE_KAFKA_PORT:-9092}
  CONTROLLER_PORT=$((PORT + 1))
  DATA=${PULSE_KAFKA_DATA:-$HOME_DIR/data-$PORT}
  PIDFILE=$HOME_DIR/kafka-$PORT.pid
  LOG=$HOME_DIR/kafka-$PORT.log
  CONF=$HOME_DIR/server-$PORT.properties
  VOTERS="1@127.0.0.1:$CONTROLLER_PORT"
}

BASE=${PULSE_KAFKA_CLUSTER_PORT:-19092}
CLUSTER_DATA=${PULSE_KAFKA_CLUSTER_DATA:-$HOME_DIR/cluster-$BASE}

set_node() {  # set_node ID: node ID of the cluster
  NODES=${PULSE_KAFKA_NODES:-3}
  NODE_ID=$1
  if ! [[ "$NODE_ID" =~ ^[0-9]+$ ]] || [ "$NODE_ID" -lt 1 ] || [ "$NODE_ID" -gt "$NODES" ]; then
    log "node id must be 1..$NODES, not '$NODE_ID'"; exit 2
  fi
  PORT=$((BASE + 2 * (NODE_ID - 1)))
  CONTROLLER_PORT=$((PORT + 1))
  # Pid, log and config files are named by port, outside the data folder: a later run with
  # another data folder still finds (and stops) a node an aborted run left behind.
  DATA=$CLUSTER_DATA/node-$NODE_ID
  PIDFILE=$HOME_DIR/cluster-$PORT.pid
  LOG=$HOME_DIR/cluster-$PORT.log
  CONF=$HOME_DIR/cluster-$PORT.properties
  HEAP="-Xms128m -Xmx512m"
  VOTERS=$(for i in $(seq 1 "$NODES"); do printf '%s%d@127.0.0.1:%d' "$([ "$i" -gt 1 ] && echo ,)" "$i" $((BASE + 2 * (i - 1) + 1)); done)
  local rf=$((NODES < 3 ? NODES : 3)) isr=$((NODES < 3 ? 1 : 2))
  # Internal topics (consumer offsets, transactions) replicated like the pipeline's own. A killed
  # broker is fenced after 3 s instead of 9 s: on loopback a missed heartbeat is a dead process,
  # and the collector's 10 s ack deadline must outlast the leader failover.
  EXTRA="offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
default.replication.factor=$rf
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
replica.lag.time.max.ms=10000"
}

log() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then return 0; fi
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$PORT}") 2>/dev/null; }

java_run() {
  java -Xms256m -Xmx512m -XX:+UseG1GC \
       -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -Dkafka.logs.dir="$HOME_DIR" \
       -cp "$LIBS/*" "$@"
}

write_config() {
  cat > "$CONF" <<CFG
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=$LISTENER://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=$LISTENER://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$LISTENER:$LISTENER
inter.broker.listener.name=$LISTENER
log.dirs=$DATA
num.partitions=12
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=2097152
log.retention.hours=24
$EXTRA
CFG
}

# launch [CLUSTER_ID]: format storage if new, start the JVM in the background (does not wait).
launch() {
  if running; then log "node $NODE_ID already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0; fi
  if port_open || port_open "$CONTROLLER_PORT"; then
    log "port $PORT or $CONTROLLER_PORT is taken by another process; set PULSE_KAFKA_PORT or PULSE_KAFKA_CLUSTER_PORT"
    return 1
  fi
  fetch
  mkdir -p "$HOME_DIR"
  write_config
  if [ ! -f "$DATA/meta.properties" ]; then
    log "formatting storage in $DATA"
    java_run kafka.tools.StorageTool format -t "${1:-$(java_run kafka.tools.StorageTool random-uuid)}" -c "$CONF" \
        ${FORMAT_ARGS[@]+"${FORMAT_ARGS[@]}"} >/dev/null
  fi
  log "starting node $NODE_ID on 127.0.0.1:$PORT (log: $LOG)"
  # shellcheck disable=SC2086 # HEAP is two options
  nohup java $HEAP -XX:+UseG1GC \
       -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -Dkafka.logs.dir="$HOME_DIR" \
       -cp "$LIBS/*" kafka.Kafka "$CONF" >"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
}

wait_ready() {  # wait_ready SECONDS: until the node listens and logged that it started
  for _ in $(seq 1 $(($1 * 2))); do
    if ! running; then log "node $NODE_ID exited during start; last log lines:"; tail -n 30 "$LOG" >&2; return 1; fi
    if port_open && grep -q "Kafka Server started" "$LOG"; then log "node $NODE_ID ready"; return 0; fi
    sleep 0.5
  done
  log "node $NODE_ID not ready after $1 s; see $LOG"; return 1
}

start() {
  if running; then log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0; fi
  launch
  wait_ready 60
}

stop() {
  if ! running; then rm -f "$PIDFILE"; log "node $NODE_ID not running"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "node $NODE_ID stopped"; return 0; }; sleep 0.5; done
  log "node $NODE_ID did not stop in 30 s; killing"; kill -9 "$pid" 2>/dev/null || true; rm -f "$PIDFILE"
}

kill9() {
  if ! running; then rm -f "$PIDFILE"; log "node $NODE_ID not running"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PIDFILE"
  log "node $NODE_ID killed (SIGKILL, pid $pid)"
}

status() {
  if running; then echo "running pid=$(cat "$PIDFILE") bootstrap=127.0.0.1:$PORT"; else echo "stopped"; return 3; fi
}

cluster() {
  local action=${1:-} id=${2:-}
  NODES=${PULSE_KAFKA_NODES:-3}
  if [ -n "$id" ]; then
    set_node "$id"
    case "$action" in
      start) launch "$(cat "$CLUSTER_DATA/cluster.id" 2>/dev/null || true)" && wait_ready 90 ;;
      stop) stop ;;
      kill) kill9 ;;
      status) status ;;
      *) echo "usage: $0 cluster start|stop|kill|status ID" >&2; exit 2 ;;
    esac
    return
  fi
  case "$action" in
    start)
      # Every node shares one cluster id; all are launched before any is awaited, as a
      # node's broker only starts once the controller quorum (a majority) is up.
      mkdir -p "$CLUSTER_DATA"
      fetch
      # A cluster id is 16 random bytes in URL-safe base64 without padding (what StorageTool random-uuid prints),
      # drawn again while it starts with "-": kafka-storage would read it as an option (1 start in 64 failed so;
      # Kafka's own Uuid.randomUuid redraws for the same reason).
      if [ ! -f "$CLUSTER_DATA/cluster.id" ]; then
        local cid=-
        while [ "${cid#-}" != "$cid" ]; do cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'); done
        printf '%s' "$cid" > "$CLUSTER_DATA/cluster.id"
      fi
      local i
      for i in $(seq 1 "$NODES"); do set_node "$i"; launch "$(cat "$CLUSTER_DATA/cluster.id")"; done
      for i in $(seq 1 "$NODES"); do set_node "$i"; wait_ready 120; done
      echo "bootstrap=$(bootstrap)" ;;
    stop)
      # All at once: stopped one by one, the last nodes wait for a controller quorum that is gone.
      local pids=()
      for i in $(seq 1 "$NODES"); do
        set_node "$i"
        if running; then pids+=("$(cat "$PIDFILE")"); kill "$(cat "$PIDFILE")"; fi
        rm -f "$PIDFILE"
      done
      for _ in $(seq 1 40); do
        local alive=0 pid
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.5
      done
      for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
      log "cluster stopped (${#pids[@]} node(s) were running)" ;;
    kill) echo "usage: $0 cluster kill ID" >&2; exit 2 ;;
    status)
      local rc=0
      for i in $(seq 1 "$NODES"); do set_node "$i"; echo "node $i: $(status || rc=3)"; running || rc=3; done
      echo "bootstrap=$(bootstrap)"
      return $rc ;;
    *) echo "usage: $0 cluster start|stop|status [ID] | kill ID" >&2; exit 2 ;;
  esac
}

SECURE_PORT=${PULSE_KAFKA_SECURE_PORT:-19192}
SECURE_DATA=${PULSE_KAFKA_SECURE_DATA:-$HOME_DIR/secure-$SECURE_PORT}

set_secure() {
  PORT=$SECURE_PORT
  CONTROLLER_PORT=$((PORT + 1))
  DATA=$SECURE_DATA/data
  PIDFILE=$HOME_DIR/secure-$PORT.pid
  LOG=$HOME_DIR/secure-$PORT.log
  CONF=$HOME_DIR/secure-$PORT.properties
  VOTERS="1@127.0.0.1:$CONTROLLER_PORT"
  HEAP="-Xms128m -Xmx512m"
  LISTENER=SASL_SSL
}

# make_tls DIR: a CA and a broker certificate it signed (SAN 127.0.0.1 and localhost, so clients verify the
# host name), in PKCS12 stores made with the JDK's keytool; ca.pem is what clients trust. Kept once made.
make_tls() {
  local dir=$1 pw
  if [ -f "$dir/keystore.p12" ] && [ -f "$dir/ca.pem" ]; then return 0; fi
  rm -rf "$dir"; mkdir -p "$dir"; chmod 700 "$dir"
  pw=$(head -c 18 /dev/urandom | base64 | tr -d '+/=\n')
  echo "$pw" > "$dir/store.password"
  local kt=(keytool -storetype PKCS12 -storepass "$pw" -keyalg RSA -keysize 2048 -validity 30)
  "${kt[@]}" -genkeypair -alias ca -keystore "$dir/ca.p12" -dname "CN=ProductPulse local test CA" \
      -ext bc:c -ext ku:c=keyCertSign,cRLSign 2>/dev/null
  keytool -exportcert -rfc -alias ca -keystore "$dir/ca.p12" -storepass "$pw" -file "$dir/ca.pem" 2>/dev/null
  "${kt[@]}" -genkeypair -alias broker -keystore "$dir/keystore.p12" -dname "CN=127.0.0.1" 2>/dev/null
  keytool -certreq -alias broker -keystore "$dir/keystore.p12" -storepass "$pw" -file "$dir/broker.csr" 2>/dev/null
  keytool -gencert -rfc -alias ca -keystore "$dir/ca.p12" -storepass "$pw" -validity 30 \
      -ext SAN=ip:127.0.0.1,dns:localhost -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth \
      -infile "$dir/broker.csr" -outfile "$dir/broker.pem" 2>/dev/null
  keytool -importcert -noprompt -alias ca -file "$dir/ca.pem" -keystore "$dir/keystore.p12" -storepass "$pw" 2>/dev/null
  keytool -importcert -alias broker -file "$dir/broker.pem" -keystore "$dir/keystore.p12" -storepass "$pw" 2>/dev/null
  keytool -importcert -noprompt -alias ca -file "$dir/ca.pem" -keystore "$dir/truststore.p12" -storetype PKCS12 \
      -storepass "$pw" 2>/dev/null
  rm -f "$dir/broker.csr"
}

secret() {  # secret FILE: the password kept in FILE, made (random) on first use
  [ -s "$1" ] || { head -c 18 /dev/urandom | base64 | tr -d '+/=\n' > "$1"; chmod 600 "$1"; }
  cat "$1"
}

secure() {
  set_secure
  case "${1:-}" in
    start)
      if running; then log "secure broker already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; secure_info; return 0; fi
      mkdir -p "$SECURE_DATA" "$HOME_DIR"
      make_tls "$SECURE_DATA/tls"
      local user=${PULSE_KAFKA_SECURE_USER:-pulse} store_pw broker_pw client_pw
      store_pw=$(cat "$SECURE_DATA/tls/store.password")
      broker_pw=$(secret "$SECURE_DATA/broker.password")
      if [ -n "${PULSE_KAFKA_SECURE_PASSWORD:-}" ]; then
        printf '%s' "$PULSE_KAFKA_SECURE_PASSWORD" > "$SECURE_DATA/client.password"; chmod 600 "$SECURE_DATA/client.password"
      fi
      client_pw=$(secret "$SECURE_DATA/client.password")
      if [[ "$user" =~ [^A-Za-z0-9._-] || "$client_pw" =~ [\],\"] ]]; then
        log "PULSE_KAFKA_SECURE_USER may hold letters, digits, '.', '_' and '-'; the password no ']', ',' or '\"'"
        return 2
      fi
      FORMAT_ARGS=(--add-scram "SCRAM-SHA-512=[name=broker,password=$broker_pw]"
                   --add-scram "SCRAM-SHA-512=[name=$user,password=$client_pw]")
      EXTRA="sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"$broker_pw\";
ssl.keystore.type=PKCS12
ssl.keystore.location=$SECURE_DATA/tls/keystore.p12
ssl.keystore.password=$store_pw
ssl.key.password=$store_pw
ssl.truststore.type=PKCS12
ssl.truststore.location=$SECURE_DATA/tls/truststore.p12
ssl.truststore.password=$store_pw
ssl.client.auth=none"
      launch
      chmod 600 "$CONF"  # it holds the broker's password and the store password
      wait_ready 60
      secure_info ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 secure start|stop|status" >&2; exit 2 ;;
  esac
}

secure_info() {
  echo "bootstrap=127.0.0.1:$PORT"
  echo "cafile=$SECURE_DATA/tls/ca.pem"
  echo "user=${PULSE_KAFKA_SECURE_USER:-pulse}"
  echo "password_file=$SECURE_DATA/client.password"
}

bootstrap() {
  local i
  for i in $(seq 1 "$NODES"); do printf '%s127.0.0.1:%d' "$([ "$i" -gt 1 ] && echo ,)" $((BASE + 2 * (i - 1))); done
  echo
}

case "${1:-}" in
  start) set_single; start ;;
  stop) set_single; stop ;;
  status) set_single; status ;;
  fetch) fetch ;;
  cluster) shift; cluster "$@" ;;
  secure) shift; secure "$@" ;;
  *) echo "usage: $0 start|stop|status|fetch | cluster start|stop|status [ID] | cluster kill ID | secure start|stop|status" >&2; exit 2 ;;
esac
