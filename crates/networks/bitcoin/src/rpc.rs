//! JSON-RPC client and block sources.
