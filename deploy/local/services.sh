#!/usr/bin/env bash
# Local Kafka and PostgreSQL without Docker: start | stop | status.
#
#   start   Installs what is missing (Java, Maven, Debian's postgresql), fetches the Kafka broker's
#           jars from Maven Central into a git-ignored cache, starts a single-node KRaft broker and a
#           PostgreSQL server on 127.0.0.1, waits for each with a deadline and writes
#           .local/services.env. A service that is already up is left alone, so a second call is a
#           no-op. Exits non-zero with the log tail and a one-line reason when a service fails.
#   stop    Stops both (Kafka gets SIGTERM and up to 30 s to shut down cleanly).
#   status  One line per service; exit 0 only when both are up.
#
# Environment (all optional; see docs/operations.md):
#   ROI_KAFKA_PORT (19092), ROI_KAFKA_CONTROLLER_PORT (19093), ROI_PG_PORT (15432),
#   ROI_PG_USER / ROI_PG_PASSWORD / ROI_PG_DATABASE (roi / roi / roi),
#   ROI_SERVICES_DIR (/var/tmp/roi-worker-services-$USER): data, logs and pid files. It lives outside
#   the checkout because the PostgreSQL server runs as the `postgres` user, which must reach its
#   data directory, and so that every clone on the machine shares one broker and one server.
#   ROI_SERVICES_DEADLINE (120): seconds each service may take to become ready.
#   ROI_SERVICES_ENV_FILE (.local/services.env): where `start` writes the connection variables.
set -Eeuo pipefail
umask 022 # the postgres user must be able to enter the directories this script creates

KAFKA_VERSION=3.9.2

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KAFKA_PORT=${ROI_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${ROI_KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${ROI_PG_PORT:-15432}
PG_USER=${ROI_PG_USER:-roi}
PG_PASSWORD=${ROI_PG_PASSWORD:-roi}
PG_DATABASE=${ROI_PG_DATABASE:-roi}
DEADLINE=${ROI_SERVICES_DEADLINE:-120}
SERVICES_DIR=${ROI_SERVICES_DIR:-/var/tmp/roi-worker-services-$(id -un)}
CACHE_DIR="$REPO_DIR/.cache"
ENV_FILE=${ROI_SERVICES_ENV_FILE:-$REPO_DIR/.local/services.env}

KAFKA_HOME="$SERVICES_DIR/kafka-$KAFKA_PORT"
KAFKA_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
PG_HOME="$SERVICES_DIR/postgres-$PG_PORT"
PG_DATA="$PG_HOME/data"
PG_RUN="$PG_HOME/run" # Unix socket directory, reachable only by the server's user (and root).

say() { printf 'services: %s\n' "$*"; }

# Prints the tail of a log and one line naming why, then exits 1.
fail() {
  local reason=$1 log=${2:-}
  if [[ -n $log && -f $log ]]; then
    printf -- '--- last lines of %s ---\n' "$log" >&2
    tail -n 40 "$log" >&2 || true
    printf -- '---\n' >&2
  fi
  printf 'services: FAILED: %s\n' "$reason" >&2
  exit 1
}

# Any command failing unexpectedly still ends with a one-line reason.
trap 'fail "unexpected failure at line $LINENO: $BASH_COMMAND"' ERR

is_root() { [[ $(id -u) -eq 0 ]]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  is_root || fail "missing $* and not root: install it with 'sudo apt-get install -y $*'"
  command -v apt-get >/dev/null || fail "missing $* and no apt-get: install it with your package manager"
  say "installing $* (apt-get)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } \
    >"$SERVICES_DIR/apt.log" 2>&1; then
    fail "apt-get install $* failed" "$SERVICES_DIR/apt.log"
  fi
}

# ---------------------------------------------------------------------------- Kafka

# The broker's pid, if the pid file names a live process that is this broker (pid files in
# /var/tmp survive reboots, when the number may belong to an unrelated process).
kafka_pid() {
  local pid
  [[ -f $KAFKA_HOME/kafka.pid ]] || return 1
  pid=$(<"$KAFKA_HOME/kafka.pid")
  if [[ ! $pid =~ ^[0-9]+$ ]] || ! tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" |
    grep -qF "kafka.Kafka $KAFKA_HOME/server.properties"; then
    return 1
  fi
  echo "$pid"
}

fetch_kafka() {
  [[ -f $KAFKA_LIBS/.complete ]] && return 0
  command -v java >/dev/null || apt_install default-jre-headless
  command -v mvn >/dev/null || apt_install maven
  say "fetching Kafka $KAFKA_VERSION from Maven Central into ${KAFKA_LIBS#"$REPO_DIR"/}"
  local tmp="$KAFKA_LIBS.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -B -q -f "$REPO_DIR/deploy/local/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$SERVICES_DIR/maven.log" 2>&1; then
    fail "could not fetch the Kafka broker jars with Maven" "$SERVICES_DIR/maven.log"
  fi
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  touch "$KAFKA_LIBS/.complete"
}

write_kafka_config() {
  mkdir -p "$KAFKA_HOME/data" "$KAFKA_HOME/logs"
  # Single node, KRaft, plaintext on loopback. Replication factors of 1 because there is one node.
  cat >"$KAFKA_HOME/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_HOME/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=168
EOF
  cat >"$KAFKA_HOME/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$KAFKA_HOME/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
EOF
}

KAFKA_JAVA=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j.configuration=file:$KAFKA_HOME/log4j.properties" "-Dkafka.logs.dir=$KAFKA_HOME/logs"
  -cp "$KAFKA_LIBS/*")
kafka_java() { "${KAFKA_JAVA[@]}" "$@"; }

start_kafka() {
  local pid
  if pid=$(kafka_pid) && port_open "$KAFKA_PORT"; then
    say "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  if pid=$(kafka_pid); then
    fail "kafka: process $pid is running but 127.0.0.1:$KAFKA_PORT does not answer; run 'make services-stop' first" "$KAFKA_HOME/logs/server.log"
  fi
  port_open "$KAFKA_PORT" && fail "kafka: port $KAFKA_PORT is taken by another process; set ROI_KAFKA_PORT"
  port_open "$KAFKA_CONTROLLER_PORT" && fail "kafka: controller port $KAFKA_CONTROLLER_PORT is taken by another process; set ROI_KAFKA_CONTROLLER_PORT"

  fetch_kafka
  write_kafka_config
  if [[ ! -f $KAFKA_HOME/data/meta.properties ]]; then
    say "kafka: formatting storage in $KAFKA_HOME/data"
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>"$KAFKA_HOME/format.log") ||
      fail "kafka: could not generate a cluster id" "$KAFKA_HOME/format.log"
    kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
      -c "$KAFKA_HOME/server.properties" >>"$KAFKA_HOME/format.log" 2>&1 ||
      fail "kafka: formatting storage failed" "$KAFKA_HOME/format.log"
  fi

  say "kafka: starting $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  : >"$KAFKA_HOME/logs/server.log"
  # setsid and closed descriptors: the broker outlives this script and never holds its output open.
  # 9>&-: the broker must not inherit (and so hold forever) this script's lock.
  setsid "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_HOME/server.properties" \
    </dev/null >"$KAFKA_HOME/logs/stdout.log" 2>&1 9>&- &
  local launched=$!
  echo "$launched" >"$KAFKA_HOME/kafka.pid"

  # Watch the process just launched, not kafka_pid: until the child has exec'd java its
  # command line is still this script's, which kafka_pid would take for a dead broker.
  local waited=0
  until port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_HOME/logs/server.log"; do
    if ! kill -0 "$launched" 2>/dev/null; then
      cat "$KAFKA_HOME/logs/stdout.log" >>"$KAFKA_HOME/logs/server.log"
      fail "kafka: the broker exited during start-up" "$KAFKA_HOME/logs/server.log"
    fi
    ((waited >= DEADLINE * 2)) && fail "kafka: not ready within ${DEADLINE}s" "$KAFKA_HOME/logs/server.log"
    sleep 0.5
    waited=$((waited + 1))
  done
  say "kafka: ready on 127.0.0.1:$KAFKA_PORT (pid $(<"$KAFKA_HOME/kafka.pid"))"
}

stop_kafka() {
  local pid
  if ! pid=$(kafka_pid); then
    say "kafka: not running"
    rm -f "$KAFKA_HOME/kafka.pid"
    return 0
  fi
  say "kafka: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= 60)); then
      say "kafka: still running after 30s, killing"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  rm -f "$KAFKA_HOME/kafka.pid"
  say "kafka: stopped"
}

# ---------------------------------------------------------------------------- PostgreSQL

# The server binaries: those of the version that made the data directory, else Debian's newest,
# else whichever pg_ctl is on PATH (other distributions).
PG_BIN=""
find_pg_bin() {
  local dir=""
  if [[ -f $PG_DATA/PG_VERSION ]]; then
    dir=/usr/lib/postgresql/$(<"$PG_DATA/PG_VERSION")/bin
  fi
  if [[ ! -x $dir/pg_ctl ]]; then
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  if [[ ! -x $dir/pg_ctl ]] && command -v pg_ctl >/dev/null; then
    dir=$(dirname "$(command -v pg_ctl)")
  fi
  [[ -n $dir && -x $dir/pg_ctl ]] || return 1
  PG_BIN=$dir
}

# The server refuses to run as root, so as root every server-side command runs as `postgres`.
as_pg() {
  if is_root; then
    # From /: the caller's directory may be private (mktemp), and every path here is absolute.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pg_running() {
  [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

pg_psql() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U postgres "$@"
}

start_postgres() {
  find_pg_bin || {
    # Debian's package would also create (and under systemd start) a cluster on port 5432.
    if is_root; then
      mkdir -p /etc/postgresql-common/createcluster.d
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/roi-worker.conf
    fi
    apt_install postgresql
    find_pg_bin || fail "postgresql: installed, but no server binaries under /usr/lib/postgresql"
  }
  if is_root && ! id postgres >/dev/null 2>&1; then
    fail "postgresql: the 'postgres' user does not exist; reinstall Debian's postgresql package"
  fi

  if pg_running; then
    say "postgresql: already running on 127.0.0.1:$PG_PORT"
  else
    port_open "$PG_PORT" && fail "postgresql: port $PG_PORT is taken by another process; set ROI_PG_PORT"
    if is_root && ! runuser -u postgres -- test -x "$SERVICES_DIR"; then
      fail "postgresql: the postgres user cannot enter $SERVICES_DIR; set ROI_SERVICES_DIR outside private directories (e.g. under /var/tmp)"
    fi
    mkdir -p "$PG_HOME"
    is_root && chown postgres: "$PG_HOME"
    as_pg mkdir -p "$PG_RUN"
    as_pg chmod 700 "$PG_RUN"
    if [[ ! -f $PG_DATA/PG_VERSION ]]; then
      say "postgresql: initialising a cluster in $PG_DATA"
      # Local socket access is trusted: its directory is reachable only by the server's user.
      as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_HOME/initdb.log" 2>&1 ||
        fail "postgresql: initdb failed" "$PG_HOME/initdb.log"
    fi
    say "postgresql: starting $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
    if ! as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_HOME/server.log" -w -t "$DEADLINE" \
      -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_RUN -c max_connections=200" \
      >"$PG_HOME/pg_ctl.log" 2>&1 9>&-; then
      cat "$PG_HOME/pg_ctl.log" >>"$PG_HOME/server.log"
      fail "postgresql: the server did not become ready within ${DEADLINE}s" "$PG_HOME/server.log"
    fi
  fi

  # Idempotent: the project's role (allowed to create the per-test databases) and database.
  pg_psql -d postgres -v user="$PG_USER" -v password="$PG_PASSWORD" -v db="$PG_DATABASE" \
    >"$PG_HOME/setup.log" 2>&1 <<'SQL' || fail "postgresql: could not create the role and database" "$PG_HOME/setup.log"
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
  say "postgresql: ready on 127.0.0.1:$PG_PORT (database $PG_DATABASE, role $PG_USER)"
}

stop_postgres() {
  if ! find_pg_bin || ! pg_running; then
    say "postgresql: not running"
    return 0
  fi
  say "postgresql: stopping"
  as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null
  say "postgresql: stopped"
}

# ---------------------------------------------------------------------------- commands

write_env_file() {
  mkdir -p "$(dirname "$ENV_FILE")"
  local content
  content="# Written by 'make services'. Load with: set -a; . $ENV_FILE; set +a
ROI_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
ROI_DATABASE_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DATABASE"
  if [[ -f $ENV_FILE && $(<"$ENV_FILE") == "$content" ]]; then
    return 0
  fi
  printf '%s\n' "$content" >"$ENV_FILE"
  say "wrote ${ENV_FILE#"$REPO_DIR"/}"
}

# The names go unquoted into a URL and a shell-sourced file, so they keep to safe characters.
check_names() {
  [[ $PG_USER =~ ^[a-z_][a-z0-9_]*$ ]] || fail "ROI_PG_USER must match [a-z_][a-z0-9_]*"
  [[ $PG_DATABASE =~ ^[a-z_][a-z0-9_]*$ ]] || fail "ROI_PG_DATABASE must match [a-z_][a-z0-9_]*"
  [[ $PG_PASSWORD =~ ^[A-Za-z0-9_.-]+$ ]] || fail "ROI_PG_PASSWORD must match [A-Za-z0-9_.-]+"
}

status() {
  local rc=0 pid
  if pid=$(kafka_pid) && port_open "$KAFKA_PORT"; then
    say "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
  else
    say "kafka: not running"
    rc=1
  fi
  if find_pg_bin && pg_running; then
    say "postgresql: running on 127.0.0.1:$PG_PORT"
  else
    say "postgresql: not running"
    rc=1
  fi
  return $rc
}

main() {
  mkdir -p "$SERVICES_DIR"
  # One start or stop at a time per services directory.
  exec 9>"$SERVICES_DIR/.lock"
  flock -w 300 9 || fail "another services.sh run holds $SERVICES_DIR/.lock"
  case ${1:-} in
  start)
    check_names
    start_postgres
    start_kafka
    write_env_file
    ;;
  stop)
    stop_kafka
    stop_postgres
    ;;
  status) status || exit 1 ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
  esac
}

main "$@"
