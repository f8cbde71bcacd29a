#!/usr/bin/env bash
# The test command. From the repository root: tests/run.sh
#
# Installs what the tests need into .venv, makes sure RabbitMQ answers, starts
# an AWS API emulator (moto), then runs the format, lint and test checks and
# prints a summary. Everything it started is stopped when it exits, however it
# exits.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

venv="$repo/.venv"
rabbitmq_port=5672
rabbitmq_deadline_s=120
moto_deadline_s=30
# Every process this run starts inherits this marker, so the ones a test left
# behind (a `cargo lambda watch` and the function it runs) can be found and
# stopped by id at exit.
run_marker="TRIGGER_BRIDGE_TEST_RUN=$$-$(date +%s%N)"
export "${run_marker?}"

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/trigger-bridge-tests.XXXXXX")
started_rabbitmq=false
moto_pid=""
apt_updated=false

log() { printf '\n==> %s\n' "$*"; }
fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# === clean-up ===

# Pids of live processes carrying this run's marker, other than this shell.
marked_pids() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        [[ $pid == "$$" ]] && continue
        if grep -qzx -- "$run_marker" "$environ" 2>/dev/null; then
            echo "$pid"
        fi
    done
}

# SIGTERM, then SIGKILL what is still there after a grace period.
stop_pids() {
    [[ $# -eq 0 ]] && return 0
    kill -TERM "$@" 2>/dev/null || true
    local give_up=$((SECONDS + 10)) pid alive
    while ((SECONDS < give_up)); do
        alive=()
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null && alive+=("$pid")
        done
        [[ ${#alive[@]} -eq 0 ]] && return 0
        sleep 0.2
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $moto_pid ]]; then
        stop_pids "$moto_pid"
    fi
    if $started_rabbitmq; then
        echo "Stopping the RabbitMQ this run started"
        rabbitmqctl stop >/dev/null 2>&1 || true
    fi
    local leftovers
    mapfile -t leftovers < <(marked_pids)
    if [[ ${#leftovers[@]} -gt 0 ]]; then
        echo "Stopping ${#leftovers[@]} process(es) the tests left running"
        stop_pids "${leftovers[@]}"
    fi
    rm -rf "$work_dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# === set-up ===

apt_install() {
    if ! $apt_updated; then
        apt-get update -qq
        apt_updated=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# Polls `command...` every half second until it succeeds or `deadline_s` pass.
wait_for() {
    local what=$1 deadline_s=$2
    shift 2
    local give_up=$((SECONDS + deadline_s))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < give_up)) || fail "$what did not come up within ${deadline_s}s"
        sleep 0.5
    done
}

# Python tools, reinstalled only when a pinned version changes.
setup_venv() {
    log "Python tools in .venv"
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi

    local stamp="$venv/.requirements.sha256" wanted
    wanted=$(cat tests/requirements.txt tests/requirements-no-deps.txt \
        <("$venv/bin/python" --version) | sha256sum)
    if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
        echo "Up to date"
        return
    fi
    local pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
    "${pip[@]}" -r tests/requirements.txt
    "${pip[@]}" --no-deps -r tests/requirements-no-deps.txt
    echo "$wanted" >"$stamp"
}

rabbitmq_answers() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$rabbitmq_port" 2>/dev/null
}

# The project's machines start RabbitMQ themselves; start one only if not.
ensure_rabbitmq() {
    log "RabbitMQ on 127.0.0.1:$rabbitmq_port"
    if rabbitmq_answers; then
        echo "Already running"
        return
    fi
    if ! command -v rabbitmq-server >/dev/null; then
        apt_install rabbitmq-server
    fi
    started_rabbitmq=true
    # Debian's package may have started the node on install.
    if ! rabbitmq_answers; then
        rabbitmq-server -detached
    fi
    # await_startup exits at once while the node has not registered yet.
    wait_for "RabbitMQ" "$rabbitmq_deadline_s" rabbitmqctl await_startup
    wait_for "RabbitMQ's AMQP listener" "$rabbitmq_deadline_s" rabbitmq_answers
    echo "Started"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); \
print(s.getsockname()[1])'
}

# Any HTTP answer, error statuses included, means the server is up.
http_answers() {
    "$venv/bin/python" - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
EOF
}

moto_answers() {
    kill -0 "$moto_pid" 2>/dev/null || fail "moto_server exited; see its log above"
    http_answers "$MOTO_ENDPOINT/moto-api/data.json"
}

start_moto() {
    log "moto (AWS API emulator)"
    local port
    port=$(free_port)
    export MOTO_ENDPOINT="http://127.0.0.1:$port"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work_dir/moto.log" 2>&1 &
    moto_pid=$!
    if ! (wait_for "moto_server" "$moto_deadline_s" moto_answers); then
        cat "$work_dir/moto.log" >&2
        fail "moto_server did not answer on $MOTO_ENDPOINT"
    fi
    echo "Listening on $MOTO_ENDPOINT"
}

# === checks ===

declare -a step_names=() step_results=() step_seconds=()

run_step() {
    local name=$1 started=$SECONDS result=passed
    shift
    log "$name: $*"
    "$@" || result=FAILED
    step_names+=("$name")
    step_results+=("$result")
    step_seconds+=($((SECONDS - started)))
}

# cargo test, with its per-binary counts added up into one closing line.
run_tests() {
    local output="$work_dir/cargo-test.log" status=0
    cargo test --all-features --workspace --no-fail-fast 2>&1 | tee "$output" || status=$?
    awk '/^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($(i + 1) ~ /^passed/) passed += $i
                if ($(i + 1) ~ /^failed/) failed += $i
                if ($(i + 1) ~ /^ignored/) ignored += $i
            }
        }
        END { printf "%d passed, %d failed, %d skipped\n", passed, failed, ignored }' \
        "$output" >"$work_dir/test-counts"
    if grep -qE '^test .* \.\.\. FAILED$' "$output"; then
        printf '\nFailing tests:\n'
        grep -E '^test .* \.\.\. FAILED$' "$output" | sed -E 's/^test (.*) \.\.\. FAILED$/  \1/'
    fi
    return "$status"
}

summary() {
    log "Summary"
    local i failed=0
    for i in "${!step_names[@]}"; do
        printf '  %-8s %-7s %5ss\n' "${step_names[$i]}" "${step_results[$i]}" \
            "${step_seconds[$i]}"
        [[ ${step_results[$i]} == passed ]] || failed=1
    done
    if [[ -f $work_dir/test-counts ]]; then
        printf '\ntests: %s\n' "$(cat "$work_dir/test-counts")"
    fi
    return "$failed"
}

main() {
    setup_venv
    ensure_rabbitmq
    start_moto

    export PATH="$venv/bin:$PATH"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

    run_step fmt cargo fmt --all -- --check
    run_step clippy cargo clippy --all-targets --all-features -- -D warnings
    run_step test run_tests
    summary
}

main "$@"
