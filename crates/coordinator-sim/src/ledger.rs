//! The settlement chain's ledger: balances credited from verified Batches, Burns debited
//! by `POST /burn` and queued until the next acknowledgement of their network, and the
//! settlement block counter.
//!
//! Every function works inside the caller's transaction. A burn debits the balance and
//! queues the payment in one transaction; an acknowledgement takes the queued burns of
//! its network (in the order they were accepted) and records them as made, in the
//! transaction that queues the `BlockAcknowledged` carrying them, so a burn is carried
//! exactly once.

use std::collections::BTreeMap;

use bitcoin_address::{Address, AddressParams};
use borsh::{BorshDeserialize, BorshSerialize};
use db::{Db, DbError, Get, Table, WriteTxn};
use primitives::{Balance, Batch, Coin, NetworkId, Payment};
use serde::{Deserialize, Serialize};

/// Balances by `(account, coin as u8)`.
pub const BALANCES: Table<([u8; 32], u8), u64> = Table::new("sim/v1/ledger/balances");
/// Totals by coin: `(credited, burned)`.
pub const TOTALS: Table<u8, (u128, u128)> = Table::new("sim/v1/ledger/totals");
/// Burns accepted, not yet carried by an acknowledgement, by `(network, burn id)`.
pub const BURNS_QUEUED: Table<(u8, u64), BurnRecord> = Table::new("sim/v1/ledger/burns_queued");
/// Burns carried by an acknowledgement, by burn id.
pub const BURNS_MADE: Table<u64, BurnRecord> = Table::new("sim/v1/ledger/burns_made");
/// The last burn id given (ids start at 1).
pub const LAST_BURN: Table<(), u64> = Table::new("sim/v1/ledger/last_burn");
/// The last settlement block made (blocks start at 1; 0: none yet).
pub const LAST_BLOCK: Table<(), u64> = Table::new("sim/v1/ledger/last_block");

/// A burn, as accepted.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct BurnRecord {
    /// Its id (ascending in acceptance order).
    pub id: u64,
    /// The account debited.
    pub account: [u8; 32],
    /// The payment ordered.
    pub payment: Payment,
    /// The payee as the operator typed it.
    pub to: String,
    /// The settlement block that carried it, once made.
    pub settlement_block: Option<u64>,
}

/// The balance of `account` in `coin`.
pub fn balance(txn: &impl Get, account: [u8; 32], coin: Coin) -> Result<u64, DbError> {
    Ok(BALANCES.get(txn, &(account, coin as u8))?.unwrap_or(0))
}

/// The last settlement block made (0: none).
pub fn last_block(txn: &impl Get) -> Result<u64, DbError> {
    Ok(LAST_BLOCK.get(txn, &())?.unwrap_or(0))
}

/// Makes the next settlement block; returns its number.
pub fn next_block(txn: &mut WriteTxn) -> Result<u64, DbError> {
    let block = last_block(txn)?.saturating_add(1);
    LAST_BLOCK.put(txn, &(), &block)?;
    Ok(block)
}

/// Credits every instruction of `batch` to its account.
pub fn credit(txn: &mut WriteTxn, batch: &Batch) -> Result<(), DbError> {
    for instruction in &batch.instructions {
        let Balance { coin, amount } = instruction.balance;
        let account = instruction.instruction.account.0;
        let before = balance(txn, account, coin)?;
        let after = before.checked_add(amount.0).unwrap_or_else(|| {
            // Signed by the set: trusted, but a ledger must never wrap.
            tracing::error!(account = %hex::encode(account), ?coin, before, amount = amount.0, "balance overflow; capped");
            u64::MAX
        });
        BALANCES.put(txn, &(account, coin as u8), &after)?;
        let (credited, burned) = TOTALS.get(txn, &(coin as u8))?.unwrap_or((0, 0));
        TOTALS.put(txn, &(coin as u8), &(credited + u128::from(amount.0), burned))?;
    }
    Ok(())
}

/// Takes `network`'s queued burns, in acceptance order, and records them as made in
/// `settlement_block`.
pub fn take_burns(
    txn: &mut WriteTxn,
    network: NetworkId,
    settlement_block: u64,
) -> Result<Vec<Payment>, DbError> {
    let mut out = Vec::new();
    for ((net, id), mut record) in BURNS_QUEUED.iter(txn)? {
        if net != network as u8 {
            continue;
        }
        BURNS_QUEUED.del(txn, &(net, id))?;
        out.push(record.payment.clone());
        record.settlement_block = Some(settlement_block);
        BURNS_MADE.put(txn, &id, &record)?;
    }
    Ok(out)
}

/// A `POST /burn` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnRequest {
    /// `bitcoin` or `litecoin`: a network of a configured set.
    pub network: String,
    /// The settlement account debited, 64 hex characters.
    pub account: String,
    /// The payee, a human-readable address of the configured chain.
    pub to: String,
    /// In the coin's smallest unit; above 0.
    pub amount: u64,
}

/// An accepted burn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurnReceipt {
    /// The burn's id.
    pub id: u64,
    /// The network.
    pub network: String,
    /// The account debited.
    pub account: String,
    /// The payee.
    pub to: String,
    /// The amount.
    pub amount: u64,
    /// The account's balance in the coin afterwards.
    pub balance: u64,
}

/// Why a burn was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum BurnError {
    /// Not a network of a configured set whose addresses the simulator parses.
    #[error("unknown network {0:?}: expected one of {1:?}")]
    UnknownNetwork(String, Vec<String>),
    /// The account is not 64 hex characters.
    #[error("bad account {0:?}: expected 64 hex characters")]
    BadAccount(String),
    /// The address does not parse for the network and chain.
    #[error("bad address {to:?} for {network} {chain}: {reason}")]
    BadAddress {
        /// The address.
        to: String,
        /// The network.
        network: String,
        /// The chain.
        chain: String,
        /// Why.
        reason: String,
    },
    /// Zero.
    #[error("the amount must be above 0")]
    ZeroAmount,
    /// The account holds less.
    #[error("insufficient balance: account {account} holds {balance} of {coin}, the burn needs {amount}")]
    InsufficientBalance {
        /// The account.
        account: String,
        /// The coin.
        coin: String,
        /// Its balance.
        balance: u64,
        /// The amount asked.
        amount: u64,
    },
    /// The database failed (not the caller's fault).
    #[error(transparent)]
    Db(#[from] DbError),
}

impl BurnError {
    /// Whether the request was at fault (HTTP 400) rather than the simulator (500).
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, BurnError::Db(_))
    }
}

/// Accepts burns for the configured networks' chain.
#[derive(Clone, Debug)]
pub struct Burner {
    chain: String,
    networks: Vec<NetworkId>,
}

impl Burner {
    /// Burns on `networks` (those of the configured sets), with addresses of `chain`.
    pub fn new(chain: String, mut networks: Vec<NetworkId>) -> Self {
        networks.sort_unstable();
        networks.dedup();
        Burner { chain, networks }
    }

    /// The payee of `request` as a payment, checked.
    fn parse(&self, request: &BurnRequest) -> Result<(NetworkId, [u8; 32], Payment), BurnError> {
        let known = || self.networks.iter().map(|n| n.name().to_string()).collect();
        let network = NetworkId::from_name(&request.network)
            .filter(|n| self.networks.contains(n))
            .ok_or_else(|| BurnError::UnknownNetwork(request.network.clone(), known()))?;
        let account: [u8; 32] = hex::decode(request.account.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| BurnError::BadAccount(request.account.clone()))?;
        let bad = |reason: String| BurnError::BadAddress {
            to: request.to.clone(),
            network: network.name().into(),
            chain: self.chain.clone(),
            reason,
        };
        let address = if network == NetworkId::Monero {
            // Regtest uses mainnet's addresses.
            let chain = match self.chain.as_str() {
                "mainnet" | "regtest" => monero_addr::Network::Mainnet,
                "testnet" => monero_addr::Network::Testnet,
                "stagenet" => monero_addr::Network::Stagenet,
                other => return Err(bad(format!("no Monero address format for chain {other:?}"))),
            };
            monero_addr::Address::from_str(chain, request.to.trim())
                .map_err(|e| bad(e.to_string()))?
                .to_external()
        } else {
            let params = AddressParams::from_names(network.name(), &self.chain)
                .ok_or_else(|| BurnError::UnknownNetwork(request.network.clone(), known()))?;
            Address::parse(&params, request.to.trim())
                .map_err(|e| bad(e.to_string()))?
                .to_external()
        };
        if request.amount == 0 {
            return Err(BurnError::ZeroAmount);
        }
        let balance =
            Balance { coin: network.native_coin(), amount: primitives::Amount(request.amount) };
        Ok((network, account, Payment { address, balance }))
    }

    /// Debits the account and queues the burn, in one committed transaction; refuses
    /// (changing nothing) a bad request or an insufficient balance.
    pub fn burn(&self, db: &Db, request: &BurnRequest) -> Result<BurnReceipt, BurnError> {
        let (network, account, payment) = self.parse(request)?;
        let coin = payment.balance.coin;
        let amount = payment.balance.amount.0;
        let mut txn = db.write()?;
        let held = balance(&txn, account, coin)?;
        let Some(left) = held.checked_sub(amount) else {
            return Err(BurnError::InsufficientBalance {
                account: hex::encode(account),
                coin: coin_name(coin).into(),
                balance: held,
                amount,
            });
        };
        BALANCES.put(&mut txn, &(account, coin as u8), &left)?;
        let (credited, burned) = TOTALS.get(&txn, &(coin as u8))?.unwrap_or((0, 0));
        TOTALS.put(&mut txn, &(coin as u8), &(credited, burned + u128::from(amount)))?;
        let id = LAST_BURN.get(&txn, &())?.unwrap_or(0).saturating_add(1);
        LAST_BURN.put(&mut txn, &(), &id)?;
        let record = BurnRecord {
            id,
            account,
            payment,
            to: request.to.trim().to_string(),
            settlement_block: None,
        };
        BURNS_QUEUED.put(&mut txn, &(network as u8, id), &record)?;
        txn.commit()?;
        tracing::info!(id, %network, account = %hex::encode(account), to = %record.to, amount, "burn queued");
        Ok(BurnReceipt {
            id,
            network: network.name().into(),
            account: hex::encode(account),
            to: record.to,
            amount,
            balance: left,
        })
    }
}

/// The name of a coin in reports.
pub fn coin_name(coin: Coin) -> &'static str {
    match coin {
        Coin::Bitcoin => "bitcoin",
        Coin::Litecoin => "litecoin",
        Coin::Monero => "monero",
        Coin::Ether => "ether",
    }
}

fn coin_from_u8(coin: u8) -> String {
    [Coin::Bitcoin, Coin::Litecoin, Coin::Monero, Coin::Ether]
        .into_iter()
        .find(|c| *c as u8 == coin)
        .map_or_else(|| format!("coin-{coin}"), |c| coin_name(c).to_string())
}

/// One coin's balance (`GET /ledger`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoinBalance {
    /// `bitcoin`, `litecoin`, `monero` or `ether`.
    pub coin: String,
    /// In the coin's smallest unit.
    pub amount: u64,
}

/// One account's balances (`GET /ledger`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountReport {
    /// The account, 64 hex.
    pub account: String,
    /// By coin, in coin order.
    pub balances: Vec<CoinBalance>,
}

impl AccountReport {
    /// The balance in `coin` (by name), 0 if none.
    pub fn balance(&self, coin: &str) -> u64 {
        self.balances.iter().filter(|b| b.coin == coin).map(|b| b.amount).sum()
    }
}

/// A burn (`GET /ledger`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurnReport {
    /// Its id.
    pub id: u64,
    /// The network paying it.
    pub network: String,
    /// The account debited.
    pub account: String,
    /// The payee as given.
    pub to: String,
    /// The payee in its settlement-layer form, hex (Bitcoin family: the output script;
    /// Monero: type byte, spend key, view key).
    pub script: String,
    /// The amount.
    pub amount: u64,
    /// The settlement block that carried it (`null` while queued).
    pub settlement_block: Option<u64>,
}

/// `GET /ledger` and `coordinator-sim ledger`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReport {
    /// Accounts with a balance entry, ascending.
    pub accounts: Vec<AccountReport>,
    /// Burns accepted, waiting for their network's next acknowledgement, in order.
    pub burns_queued: Vec<BurnReport>,
    /// Burns carried by an acknowledgement, in order.
    pub burns_made: Vec<BurnReport>,
    /// Credited from Batches, ever, by coin.
    pub total_credited: BTreeMap<String, u128>,
    /// Burned, ever, by coin.
    pub total_burned: BTreeMap<String, u128>,
    /// The last settlement block made (0: none).
    pub last_settlement_block: u64,
}

fn burn_report(record: &BurnRecord) -> BurnReport {
    BurnReport {
        id: record.id,
        network: record.payment.balance.coin.network().name().into(),
        account: hex::encode(record.account),
        to: record.to.clone(),
        script: hex::encode(record.payment.address.as_bytes()),
        amount: record.payment.balance.amount.0,
        settlement_block: record.settlement_block,
    }
}

impl LedgerReport {
    /// Reads the ledger.
    pub fn read(txn: &impl Get) -> Result<Self, DbError> {
        let mut accounts: BTreeMap<[u8; 32], Vec<CoinBalance>> = BTreeMap::new();
        for ((account, coin), amount) in BALANCES.iter(txn)? {
            accounts
                .entry(account)
                .or_default()
                .push(CoinBalance { coin: coin_from_u8(coin), amount });
        }
        let mut queued: Vec<BurnRecord> =
            BURNS_QUEUED.iter(txn)?.into_iter().map(|(_, r)| r).collect();
        queued.sort_by_key(|r| r.id);
        let mut total_credited = BTreeMap::new();
        let mut total_burned = BTreeMap::new();
        for (coin, (credited, burned)) in TOTALS.iter(txn)? {
            total_credited.insert(coin_from_u8(coin), credited);
            total_burned.insert(coin_from_u8(coin), burned);
        }
        Ok(LedgerReport {
            accounts: accounts
                .into_iter()
                .map(|(a, balances)| AccountReport { account: hex::encode(a), balances })
                .collect(),
            burns_queued: queued.iter().map(burn_report).collect(),
            burns_made: BURNS_MADE.iter(txn)?.iter().map(|(_, r)| burn_report(r)).collect(),
            total_credited,
            total_burned,
            last_settlement_block: last_block(txn)?,
        })
    }

    /// Lines for a terminal.
    pub fn human(&self) -> String {
        let mut out = format!("last settlement block {}\n", self.last_settlement_block);
        for (coin, credited) in &self.total_credited {
            let burned = self.total_burned.get(coin).copied().unwrap_or(0);
            out += &format!("{coin}: credited {credited}, burned {burned}\n");
        }
        out += &format!("\naccounts ({})\n", self.accounts.len());
        for a in &self.accounts {
            let balances: Vec<String> =
                a.balances.iter().map(|b| format!("{} {}", b.amount, b.coin)).collect();
            out += &format!("  {}  {}\n", a.account, balances.join(", "));
        }
        for (title, burns) in [("queued", &self.burns_queued), ("made", &self.burns_made)] {
            out += &format!("\nburns {title} ({})\n", burns.len());
            for b in burns {
                let block = b.settlement_block.map_or(String::new(), |s| format!(" in block {s}"));
                out += &format!(
                    "  #{} {} {} from {} to {}{block}\n",
                    b.id, b.amount, b.network, b.account, b.to
                );
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(network: &str, to: &str) -> BurnRequest {
        BurnRequest {
            network: network.into(),
            account: hex::encode([1; 32]),
            to: to.into(),
            amount: 5,
        }
    }

    #[test]
    fn monero_burns_carry_the_binary_address() {
        let burner = Burner::new("regtest".into(), vec![NetworkId::Monero]);
        let standard = "42ey1afDFnn4886T7196doS9GPMzexD9gXpsZJDwVjeRVdFCSoHnv7KPbBeGpzJBzHRCAs9UxqeoyFQMYbqSWYTfJJQAWDm";
        let (network, _, payment) = burner.parse(&request("monero", standard)).unwrap();
        assert_eq!(network, NetworkId::Monero);
        let bytes = payment.address.as_bytes();
        assert_eq!((bytes.len(), bytes[0]), (65, 0), "type byte, spend key, view key");
        let back =
            monero_addr::Address::from_external(monero_addr::Network::Mainnet, &payment.address);
        assert_eq!(back.unwrap().to_string(), standard);
        // A Bitcoin address, or a Monero one with a typo, is refused.
        for bad in ["bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", &standard.replace('4', "5")] {
            let refused = burner.parse(&request("monero", bad));
            assert!(matches!(refused, Err(BurnError::BadAddress { .. })), "{bad}: {refused:?}");
        }
    }
}
