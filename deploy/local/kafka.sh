#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft) on 127.0.0.1 for dev, tests, CI and the demo.
#
#   deploy/local/kafka.sh start|stop|status|fetch
#
# Jars come from Maven Central (deploy/local/kafka/pom.xml) into a cache folder
# outside the repo; storage is formatted on first start. start and stop are
# idempotent. Settings (environment):
#   PULSE_KAFKA_HOME   cache + data folder   (default ~/.cache/productpulse/kafka-$KAFKA_VERSION)
#   PULSE_KAFKA_PORT   broker port           (default 9092; controller uses port+1)
#   PULSE_KAFKA_DATA   log (data) folder     (default $PULSE_KAFKA_HOME/data-$PORT)
set -euo pipefail

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$(dirname "$0")/kafka/pom.xml")
HERE=$(cd "$(dirname "$0")" && pwd)
HOME_DIR=${PULSE_KAFKA_HOME:-$HOME/.cache/productpulse/kafka-$KAFKA_VERSION}
PORT=${PULSE_KAFKA_PORT:-9092}
CONTROLLER_PORT=$((PORT + 1))
LIBS=$HOME_DIR/libs
DATA=${PULSE_KAFKA_DATA:-$HOME_DIR/data-$PORT}
PIDFILE=$HOME_DIR/kafka-$PORT.pid
LOG=$HOME_DIR/kafka-$PORT.log
CONF=$HOME_DIR/server-$PORT.properties

log() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then return 0; fi
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  mkdir -p "$LIBS"
  mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

java_run() {
  java -Xms256m -Xmx1g -XX:+UseG1GC \
       -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -Dkafka.logs.dir="$HOME_DIR" \
       -cp "$LIBS/*" "$@"
}

write_config() {
  cat > "$CONF" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
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
CFG
}

start() {
  if running; then log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0; fi
  if port_open; then log "port $PORT is taken by another process; set PULSE_KAFKA_PORT"; return 1; fi
  fetch
  write_config
  if [ ! -f "$DATA/meta.properties" ]; then
    log "formatting storage in $DATA"
    java_run kafka.tools.StorageTool format -t "$(java_run kafka.tools.StorageTool random-uuid)" -c "$CONF" >/dev/null
  fi
  log "starting broker on 127.0.0.1:$PORT (log: $LOG)"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC \
       -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -Dkafka.logs.dir="$HOME_DIR" \
       -cp "$LIBS/*" kafka.Kafka "$CONF" >"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if ! running; then log "broker exited during start; last log lines:"; tail -n 30 "$LOG" >&2; return 1; fi
    if port_open && grep -q "Kafka Server started" "$LOG"; then log "ready"; return 0; fi
    sleep 0.5
  done
  log "broker not ready after 60 s; see $LOG"; return 1
}

stop() {
  if ! running; then rm -f "$PIDFILE"; log "not running"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped"; return 0; }; sleep 0.5; done
  log "broker did not stop in 30 s; killing"; kill -9 "$pid" 2>/dev/null || true; rm -f "$PIDFILE"
}

status() {
  if running; then echo "running pid=$(cat "$PIDFILE") bootstrap=127.0.0.1:$PORT"; else echo "stopped"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
