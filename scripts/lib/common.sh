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

# Makes sure nats-server, litecoind, monerod and openssl are installed (Debian packages).
ensure_components() {
    export PATH="$PATH:/usr/sbin:/sbin"
    local missing=()
    command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
    command -v litecoind >/dev/null 2>&1 || missing+=(litecoind)
    command -v monerod >/dev/null 2>&1 || missing+=(monero)
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
    NATS_SERVER="$(command -v nats-server)"
    export NATS_SERVER
}

# Makes sure the Rust toolchain pinned in rust-toolchain.toml is usable.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found; install Rust (rustup) first" >&2
        return 1
    fi
}
