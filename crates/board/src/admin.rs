//! Admin commands that read the database directly: `board accounts`, the
//! accounts storing the most image bytes (issue 27's "an admin command
//! that lists the largest accounts").

use std::fmt::Write as _;

use crate::config::AccountsArgs;
use crate::error::human_size;
use crate::store::{AccountUsage, Stores};

/// Lists the `--largest` accounts of the database at `--database-url`,
/// largest first, as a table for people.
///
/// # Errors
/// A message when the database cannot be opened or read.
pub async fn largest_accounts(args: &AccountsArgs) -> Result<String, String> {
    let stores = Stores::open(&args.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let limit = usize::try_from(args.largest).unwrap_or(usize::MAX);
    let accounts = stores
        .users
        .largest(limit)
        .await
        .map_err(|e| e.to_string())?;
    Ok(accounts_table(&accounts))
}

/// One line per account: name, id, messages, bytes (exact, then for
/// people), under a header.
///
/// ```
/// use board::admin::accounts_table;
/// use board::store::AccountUsage;
/// let table = accounts_table(&[AccountUsage {
///     user_id: "a1".into(),
///     username: "ada".into(),
///     messages: 3,
///     bytes: 3 << 20,
/// }]);
/// let lines: Vec<&str> = table.lines().collect();
/// assert!(lines[0].starts_with("account"));
/// assert!(lines[1].starts_with("ada ") && lines[1].ends_with("3145728  3 MiB"));
/// ```
pub fn accounts_table(accounts: &[AccountUsage]) -> String {
    let mut out = format!(
        "{:<24} {:<32} {:>9} {:>14}\n",
        "account", "id", "messages", "bytes"
    );
    for a in accounts {
        let _ = writeln!(
            out,
            "{:<24} {:<32} {:>9} {:>14}  {}",
            a.username,
            a.user_id,
            a.messages,
            a.bytes,
            human_size(a.bytes)
        );
    }
    if accounts.is_empty() {
        out.push_str("(no accounts)\n");
    }
    out
}
