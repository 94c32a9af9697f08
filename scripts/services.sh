# Services for the scale-out test stack, sourced by scripts/test (bash):
#   PostgreSQL on 127.0.0.1:5432  -> ADAPTER_REGISTRY_TEST_POSTGRES
#   moto (S3 API) on a free port   -> ADAPTER_REGISTRY_TEST_S3_ENDPOINT, AWS_* for moto
# Idempotent: a running PostgreSQL and an installed moto venv are reused. The caller stops
# moto with `adapter_registry_services_stop` (scripts/test does it in an EXIT trap).
# A service that cannot be started fails the run when CI or ADAPTER_REGISTRY_REQUIRE_SERVICES=1
# is set; otherwise it is a warning, its variable stays unset, and the suites skip the
# scale-out stack with a note.

ADAPTER_REGISTRY_MOTO_VERSION=5.2.5
# The Python venv holding moto; CI may point it outside the checkout to reuse it.
ADAPTER_REGISTRY_VENV="${ADAPTER_REGISTRY_VENV:-$PWD/.venv}"
ADAPTER_REGISTRY_MOTO_PID=""

_services_required() {
    [[ -n "${CI:-}" || "${ADAPTER_REGISTRY_REQUIRE_SERVICES:-}" == "1" ]]
}

# Report a service that could not be started: fatal when services are required.
_services_unavailable() {
    if _services_required; then
        echo "error: $1 (CI / ADAPTER_REGISTRY_REQUIRE_SERVICES=1 demand PostgreSQL and S3)" >&2
        exit 1
    fi
    echo "warning: $1; the scale-out stack (PostgreSQL + S3) will be skipped" >&2
}

_services_start_postgres() {
    unset ADAPTER_REGISTRY_TEST_POSTGRES
    if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
        _services_unavailable "PostgreSQL client tools (pg_isready, psql) not installed"
        return 0
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        local version
        version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
        if [[ -z "$version" ]] ||
            ! pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2; then
            _services_unavailable "cannot start PostgreSQL (pg_ctlcluster failed)"
            return 0
        fi
        local i
        for ((i = 0; i < 300; i++)); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 0.1
        done
        if ! pg_isready -q -h 127.0.0.1 -p 5432; then
            _services_unavailable "PostgreSQL did not become ready within 30 s"
            return 0
        fi
    fi
    export ADAPTER_REGISTRY_TEST_POSTGRES="postgres://postgres@127.0.0.1:5432/postgres"
}

_services_start_moto() {
    unset ADAPTER_REGISTRY_TEST_S3_ENDPOINT
    local venv="$ADAPTER_REGISTRY_VENV"
    local stamp="$venv/.moto-$ADAPTER_REGISTRY_MOTO_VERSION"
    if [[ ! -f "$stamp" || ! -x "$venv/bin/moto_server" ]]; then
        echo "installing moto[server]==$ADAPTER_REGISTRY_MOTO_VERSION into $venv" >&2
        if ! { python3 -m venv "$venv" &&
            "$venv/bin/pip" install -q "moto[server]==$ADAPTER_REGISTRY_MOTO_VERSION" >&2 &&
            touch "$stamp"; }; then
            _services_unavailable "cannot install moto into $venv"
            return 0
        fi
    fi
    local port
    port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$venv/moto.log" 2>&1 &
    ADAPTER_REGISTRY_MOTO_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        kill -0 "$ADAPTER_REGISTRY_MOTO_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! curl -s -o /dev/null "http://127.0.0.1:$port/"; then
        adapter_registry_services_stop
        _services_unavailable "moto_server did not answer on port $port (log: $venv/moto.log)"
        return 0
    fi
    export ADAPTER_REGISTRY_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
}

# Stops the moto server started here (PostgreSQL is a machine service and keeps running).
adapter_registry_services_stop() {
    if [[ -n "$ADAPTER_REGISTRY_MOTO_PID" ]]; then
        kill "$ADAPTER_REGISTRY_MOTO_PID" 2>/dev/null || true
        wait "$ADAPTER_REGISTRY_MOTO_PID" 2>/dev/null || true
        ADAPTER_REGISTRY_MOTO_PID=""
    fi
}

_services_start_postgres
_services_start_moto
