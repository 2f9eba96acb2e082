# Shared by scripts/test and scripts/devnet: install what is missing, find the tools.
# shellcheck shell=bash

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: '$*' needs root and sudo is not available; run it as root once" >&2
        return 1
    fi
}

# The first version number in "$1" ("Litecoin Core version v0.21.2.1-gfce5" -> 0.21.2.1).
version_of() {
    grep -oE '[0-9]+(\.[0-9]+)+' <<<"$1" | head -1
}

# Fails, naming what was found, unless "$2 --version" reports at least version "$3"
# ("$1" names the program in messages).
require_version() {
    local name=$1 bin=$2 min=$3 out found
    out="$("$bin" --version 2>&1 | head -1)" || true
    found="$(version_of "$out")"
    if [ -z "$found" ] || [ "$(printf '%s\n%s\n' "$min" "$found" | sort -V | head -1)" != "$min" ]; then
        echo "error: $name at $bin reports version ${found:-unknown} (\"$out\"); the tests and the devnet need $min or later" >&2
        return 1
    fi
    echo "==> $name $found (at least $min): $bin"
}

# The minimum versions the tests and the devnet need: litecoind with MWEB as mainnet runs
# it (0.21.2), monerod with the RPC the scanner reads (0.18.0), nats-server with
# JetStream's publish deduplication and durable pull consumers (2.9.0).
MIN_LITECOIND=0.21.2
MIN_MONEROD=0.18.0
MIN_NATS_SERVER=2.9.0

# Makes sure nats-server, litecoind, monerod, openssl, a C compiler and `kill` are
# installed (Debian packages), at the versions needed. NATS_SERVER=/path and
# BITCOIND=/path (a Bitcoin Core node instead of litecoind) are used as given.
ensure_components() {
    export PATH="$PATH:/usr/sbin:/sbin"
    if [ -r /etc/os-release ]; then
        # shellcheck disable=SC1091
        echo "==> on $( . /etc/os-release && echo "${PRETTY_NAME:-$ID}")"
    fi
    local missing=()
    if [ -n "${NATS_SERVER:-}" ]; then
        [ -x "$NATS_SERVER" ] || { echo "error: NATS_SERVER=$NATS_SERVER is not an executable" >&2; return 1; }
    else
        command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
    fi
    if [ -n "${BITCOIND:-}" ]; then
        [ -x "$BITCOIND" ] || { echo "error: BITCOIND=$BITCOIND is not an executable" >&2; return 1; }
    else
        command -v litecoind >/dev/null 2>&1 || missing+=(litecoind)
    fi
    command -v monerod >/dev/null 2>&1 || missing+=(monero)
    # Crates with C parts build with the system's compiler; processes are stopped with
    # `kill` (procps), not the shell's builtin.
    command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
    type -P kill >/dev/null 2>&1 || missing+=(procps)
    # The secured-broker tests make a test CA and certificates with it.
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    # The deployment checks: promtool (alert rules), systemd-analyze (the units) and
    # docker-compose (the compose file; no container is run).
    local tools=()
    command -v promtool >/dev/null 2>&1 || tools+=(prometheus)
    command -v systemd-analyze >/dev/null 2>&1 || tools+=(systemd)
    command -v docker-compose >/dev/null 2>&1 || tools+=(docker-compose)
    if [ "${#missing[@]}" -gt 0 ] || [ "${#tools[@]}" -gt 0 ]; then
        echo "==> installing ${missing[*]} ${tools[*]} (apt-get)"
        as_root apt-get update -qq
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [ "${#tools[@]}" -gt 0 ]; then
        # Without recommends: promtool, not a Prometheus server and its exporters.
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${tools[@]}" >/dev/null
    fi
    NATS_SERVER="${NATS_SERVER:-$(command -v nats-server)}"
    export NATS_SERVER
    require_version nats-server "$NATS_SERVER" "$MIN_NATS_SERVER"
    if [ -z "${BITCOIND:-}" ]; then
        require_version litecoind "$(command -v litecoind)" "$MIN_LITECOIND"
    fi
    require_version monerod "$(command -v monerod)" "$MIN_MONEROD"
}

# Makes sure the Rust toolchain pinned in rust-toolchain.toml is usable.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found; install Rust (rustup) first" >&2
        return 1
    fi
}
