//! The one place the processor names network implementations: the binary selects one
//! from the config (`network` and `[node]`), and the pipeline runs generic over it.
use bitcoin_network::rpc::{RestBlocks, Rpc, RpcAuth, RpcConfig};
use bitcoin_network::{Bitcoin, Params};
use primitives::NetworkId;

use crate::config::{Config, ConfigError, NodeConfig};

/// The network a configured node serves.
#[derive(Debug)]
pub enum Node {
    /// Bitcoin or Litecoin over a Bitcoin Core-compatible node.
    BitcoinFamily(Bitcoin<RestBlocks>),
}

/// The configured node's network, if a node is configured. Builds the clients without
/// contacting the node.
pub fn node(config: &Config) -> Result<Option<Node>, ConfigError> {
    let Some(node) = &config.node else { return Ok(None) };
    match config.network()? {
        NetworkId::Bitcoin | NetworkId::Litecoin => {
            Ok(Some(Node::BitcoinFamily(bitcoin_family(config, node)?)))
        }
        other => Err(ConfigError::invalid(
            "node",
            format!("scanning and signing on {other} is not built yet; remove [node] to run key generation only"),
        )),
    }
}

/// Checks the `[node]` table (the node is not contacted).
pub fn check(config: &Config) -> Result<(), ConfigError> {
    node(config).map(|_| ())
}

/// Applies the shared overrides of `[node]` to a network's defaults, and checks them.
fn overrides(node: &NodeConfig, n: &mut scanner::NetworkParams) -> Result<(), ConfigError> {
    n.confirmations = node.confirmations.unwrap_or(n.confirmations);
    n.max_inputs = node.max_inputs.unwrap_or(n.max_inputs);
    n.max_outputs = node.max_outputs.unwrap_or(n.max_outputs);
    n.dust = node.dust.map(primitives::Amount).unwrap_or(n.dust);
    n.min_fee_rate = node.min_fee_rate.unwrap_or(n.min_fee_rate);
    n.max_fee_rate = node.max_fee_rate.unwrap_or(n.max_fee_rate);
    if n.confirmations == 0 || n.max_inputs == 0 || n.max_outputs < 2 {
        return Err(ConfigError::invalid(
            "node",
            "need confirmations >= 1, max_inputs >= 1, max_outputs >= 2",
        ));
    }
    if n.min_fee_rate > n.max_fee_rate {
        return Err(ConfigError::invalid(
            "node",
            format!("min_fee_rate {} is above max_fee_rate {}", n.min_fee_rate, n.max_fee_rate),
        ));
    }
    Ok(())
}

fn bitcoin_family(config: &Config, node: &NodeConfig) -> Result<Bitcoin<RestBlocks>, ConfigError> {
    let mut params = Params::from_names(&config.network, &node.chain).ok_or_else(|| {
        ConfigError::invalid(
            "node.chain",
            format!(
                "{} on {:?}: expected a Bitcoin-family network and mainnet, testnet or regtest",
                config.network, node.chain
            ),
        )
    })?;
    // MWEB (LIP-0002/0003) is active on Litecoin's mainnet and testnet: its extension
    // blocks and HogEx transactions do not parse yet, so the scanner would retry the first
    // such block for ever (issue 16). Only regtest, where tests keep MWEB inactive, runs.
    if config.network == "litecoin" && node.chain != "regtest" {
        return Err(ConfigError::invalid(
            "node.chain",
            format!(
                "litecoin on {}: MWEB is active there and its blocks cannot be parsed yet, so \
                 scanning would stop at the first one; only regtest is supported for now",
                node.chain
            ),
        ));
    }
    overrides(node, &mut params.network)?;
    let auth = match (&node.rpc_cookie_file, &node.rpc_user, &node.rpc_password_file) {
        (Some(cookie), None, None) => RpcAuth::Cookie(cookie.clone()),
        // The password from PROCESSOR_RPC_PASSWORD, else from the file, like every secret.
        (None, Some(user), file) => {
            let password = service::config::read_secret(
                "RPC password",
                "PROCESSOR_RPC_PASSWORD",
                "node.rpc_password_file",
                file.as_deref(),
            )?;
            RpcAuth::UserPass { user: user.clone(), password: password.to_string() }
        }
        _ => {
            return Err(ConfigError::invalid(
                "node",
                "set either rpc_cookie_file, or rpc_user with rpc_password_file (or \
                 PROCESSOR_RPC_PASSWORD in the environment)",
            ))
        }
    };
    let mut rpc_config = RpcConfig::new(node.rpc_url.clone(), auth);
    if let Some(ms) = node.rpc_timeout_ms {
        rpc_config.timeout = std::time::Duration::from_millis(ms);
    }
    let rpc =
        Rpc::new(rpc_config).map_err(|e| ConfigError::invalid("node.rpc_url", e.to_string()))?;
    let rest = RestBlocks::new(node.rest_url.as_deref().unwrap_or(&node.rpc_url))
        .map_err(|e| ConfigError::invalid("node.rest_url", e.to_string()))?;
    Ok(Bitcoin::new(rpc, rest, params))
}
