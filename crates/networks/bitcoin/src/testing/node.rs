//! A litecoind/bitcoind regtest node for tests.
