//! `audience-operator sync` (stub; the CLI engineer replaces it).

use super::SyncArgs;

pub async fn main(args: SyncArgs) -> anyhow::Result<()> {
    anyhow::bail!("`sync` is not implemented yet ({args:?})")
}
