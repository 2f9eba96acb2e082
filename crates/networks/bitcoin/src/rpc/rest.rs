//! Blocks over the node's REST interface.

use std::time::Duration;

use bitcoin::BlockHash;
use bytes::Bytes;
use hyper::Method;

use crate::mweb::{self, NodeBlock};

use super::{check_block, truncate_body, with_retries, BlockSource, Endpoint, RpcError};

/// Blocks over the node's REST interface (`GET /rest/block/<hash>.bin`; the node must run
/// with `-rest`). Unauthenticated, and about twice as fast as `getblock` since there is no
/// hex or JSON.
#[derive(Clone, Debug)]
pub struct RestBlocks {
    pub(super) endpoint: Endpoint,
    timeout: Duration,
    retries: u32,
}

impl RestBlocks {
    /// Blocks from the node at `base_url` (`http://host:port`, the RPC port; a path is
    /// kept as a prefix, for a proxy). A 30 s timeout per attempt and 3 retries.
    pub fn new(base_url: impl AsRef<str>) -> Result<RestBlocks, RpcError> {
        let mut endpoint = Endpoint::parse(base_url.as_ref())?;
        endpoint.path = endpoint.path.trim_end_matches('/').to_string();
        Ok(RestBlocks { endpoint, timeout: Duration::from_secs(30), retries: 3 })
    }

    /// Replaces the per-attempt timeout and the retry count.
    pub fn with_timeout(mut self, timeout: Duration, retries: u32) -> RestBlocks {
        self.timeout = timeout;
        self.retries = retries;
        self
    }

    async fn get_once(&self, hash: &BlockHash, path: &str) -> Result<NodeBlock, RpcError> {
        let label = format!("GET {path}");
        let request = self.endpoint.request(Method::GET, path, None, Bytes::new())?;
        let response = self.endpoint.send(request, &label, self.timeout).await?;
        match response.status {
            200 => {
                let block = mweb::decode_block(&response.body).map_err(|e| RpcError::Decode {
                    method: label.clone(),
                    reason: e.to_string(),
                })?;
                check_block(&label, hash, block)
            }
            // "<hash> not found"; an empty 404 means no REST handler: -rest is off.
            404 if String::from_utf8_lossy(&response.body).contains("not found") => {
                Err(RpcError::BlockNotFound { hash: *hash })
            }
            404 if response.body.is_empty() => Err(RpcError::Http {
                status: 404,
                body: "no REST handler: is the node started with -rest?".into(),
            }),
            status => Err(RpcError::Http { status, body: truncate_body(&response.body) }),
        }
    }
}

impl BlockSource for RestBlocks {
    async fn block(&self, hash: &BlockHash) -> Result<NodeBlock, RpcError> {
        let path = format!("{}/rest/block/{hash}.bin", self.endpoint.path);
        with_retries(self.retries, &path, true, || self.get_once(hash, &path)).await
    }
}
