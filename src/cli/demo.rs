//! `audience-operator demo` (stub; the CLI engineer replaces it).

use super::DemoArgs;

pub async fn main(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("`demo` is not implemented yet ({args:?})")
}
