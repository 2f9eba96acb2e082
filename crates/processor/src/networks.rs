//! The one place the processor names network implementations: the binary selects one
//! from the config (`network` and `[node]`), and the pipeline runs generic over it.
use bitcoin_network::rpc::{RestBlocks, Rpc, RpcAuth, RpcConfig};
use bitcoin_network::{Bitcoin, Params};
use monero_network::Monero;
use primitives::NetworkId;

use crate::config::{Config, ConfigError, NodeConfig};

/// The network a configured node serves.
#[derive(Debug)]
pub enum Node {
    /// Bitcoin or Litecoin over a Bitcoin Core-compatible node.
    BitcoinFamily(Bitcoin<RestBlocks>),
    /// Monero over monerod.
    Monero(Monero),
}

/// The configured node's network, if a node is configured. Builds the clients without
/// contacting the node.
pub fn node(config: &Config) -> Result<Option<Node>, ConfigError> {
    let Some(node) = &config.node else { return Ok(None) };
    match config.network()? {
        NetworkId::Bitcoin | NetworkId::Litecoin => {
            Ok(Some(Node::BitcoinFamily(bitcoin_family(config, node)?)))
        }
        NetworkId::Monero => Ok(Some(Node::Monero(monero(node)?))),
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

/// The node's RPC password: `PROCESSOR_RPC_PASSWORD`, else the file, like every secret.
fn rpc_password(
    file: &Option<std::path::PathBuf>,
) -> Result<zeroize::Zeroizing<String>, ConfigError> {
    service::config::read_secret(
        "RPC password",
        "PROCESSOR_RPC_PASSWORD",
        "node.rpc_password_file",
        file.as_deref(),
    )
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
    overrides(node, &mut params.network)?;
    let auth = match (&node.rpc_cookie_file, &node.rpc_user, &node.rpc_password_file) {
        (Some(cookie), None, None) => RpcAuth::Cookie(cookie.clone()),
        // The password from PROCESSOR_RPC_PASSWORD, else from the file, like every secret.
        (None, Some(user), file) => {
            RpcAuth::UserPass { user: user.clone(), password: rpc_password(file)?.to_string() }
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

/// Monero over monerod: `rpc_url`, with `rpc_user` and the password (file or
/// `PROCESSOR_RPC_PASSWORD`) for a daemon started with `--rpc-login` (digest auth); no
/// cookie and no REST endpoint.
fn monero(node: &NodeConfig) -> Result<Monero, ConfigError> {
    let mut params = monero_network::Params::from_chain(&node.chain).ok_or_else(|| {
        ConfigError::invalid(
            "node.chain",
            format!("monero on {:?}: expected mainnet, stagenet, testnet or regtest", node.chain),
        )
    })?;
    if node.rpc_cookie_file.is_some() || node.rest_url.is_some() {
        return Err(ConfigError::invalid(
            "node",
            "monerod has no cookie file and no REST endpoint: set rpc_url (and rpc_user with \
             rpc_password_file for a daemon run with --rpc-login)",
        ));
    }
    overrides(node, &mut params.network)?;
    if params.network.confirmations < monero_network::network::MIN_CONFIRMATIONS {
        return Err(ConfigError::invalid(
            "node.confirmations",
            format!(
                "monero needs at least {} confirmations: an output's ring is chosen at the block its \
                 10-block spend lock ends, which must exist when its own block is final",
                monero_network::network::MIN_CONFIRMATIONS
            ),
        ));
    }
    if params.network.max_outputs > monero_network::network::MAX_OUTPUTS {
        return Err(ConfigError::invalid(
            "node.max_outputs",
            format!(
                "a Monero transaction has at most {} outputs",
                monero_network::network::MAX_OUTPUTS
            ),
        ));
    }
    let url = match (&node.rpc_user, &node.rpc_password_file) {
        (None, None) => node.rpc_url.clone(),
        (Some(user), file) => {
            if user.is_empty() || user.contains(['@', ':', '/']) {
                return Err(ConfigError::invalid(
                    "node.rpc_user",
                    "must be non-empty, without '@', ':' or '/' (it goes into the daemon URL)",
                ));
            }
            let password = rpc_password(file)?;
            if password.contains(['@', '/']) {
                return Err(ConfigError::invalid(
                    "node.rpc_password_file",
                    "the password may not contain '@' or '/' (monerod's digest login goes in its URL)",
                ));
            }
            let Some((scheme, rest)) = node.rpc_url.split_once("://") else {
                return Err(ConfigError::invalid("node.rpc_url", "expected http://host:port"));
            };
            format!("{scheme}://{user}:{}@{rest}", password.as_str())
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid("node", "rpc_password_file needs rpc_user"));
        }
    };
    if node.rpc_url.contains('@') {
        return Err(ConfigError::invalid(
            "node.rpc_url",
            "put the credentials in rpc_user and rpc_password_file, not in the URL",
        ));
    }
    let timeout = std::time::Duration::from_millis(node.rpc_timeout_ms.unwrap_or(60_000));
    Ok(Monero::new(monero_network::rpc::Node::new(url, timeout), params))
}
