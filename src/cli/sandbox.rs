//! `audience-operator sandbox` (stub; the CLI engineer replaces it).

use super::SandboxArgs;

pub async fn main(args: SandboxArgs) -> anyhow::Result<()> {
    anyhow::bail!("`sandbox` is not implemented yet ({args:?})")
}
