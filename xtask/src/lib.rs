//! Local infrastructure shared by `cargo xtask` and the test suite: tables from
//! `template.yaml`, the embedded Dynoxide server, the official DynamoDB Local, a fault-injecting
//! proxy for it (over TLS of its own, for the benchmark), and the tools the commands install.

pub mod dynamodb_local;
pub mod embedded;
pub mod events_feed;
pub mod fault_proxy;
mod local_server;
pub mod local_tls;
pub mod moto;
pub mod runtime_api;
pub mod stream_feed;
pub mod template;
pub mod tools;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The region and fake credentials every local process uses, so that nothing probes the EC2
/// metadata service or looks for a real account.
pub const LOCAL_AWS_ENV: [(&str, &str); 5] = [
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "local"),
    ("AWS_SECRET_ACCESS_KEY", "local"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The functions, by binary name.
pub const FUNCTIONS: [&str; 5] = [
    "create-user",
    "get-user",
    "list-users",
    "update-user",
    "delete-user",
];

/// The functions fed by the users table's stream rather than by the API, by binary name.
pub const STREAM_FUNCTIONS: [&str; 1] = ["publish-events"];

/// Every function, by binary name: the API's, then the stream's.
pub fn all_functions() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.into_iter().chain(STREAM_FUNCTIONS)
}

/// The cargo that runs this command, so that nested builds use the same toolchain.
pub fn cargo() -> std::process::Command {
    tool(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A command for a tool that may run cargo, without the variables `cargo run` gave this process
/// (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...). Build scripts such as ring's rerun when those
/// change, so a nested build would otherwise redo what a plain `cargo build` did, and the reverse.
pub fn tool(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        let Some(text) = name.to_str() else { continue };
        if text.starts_with("CARGO_PKG_")
            || text.starts_with("CARGO_MANIFEST_")
            || matches!(
                text,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(name);
        }
    }
    command
}

/// A running process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The cursor secret of local runs and tests; deployments generate their own.
pub const LOCAL_CURSOR_SECRET: &str = "local-cursor-secret-not-for-production-use-0123456789";

/// The environment a function (`binary`) runs with locally: the region and fake credentials,
/// the endpoint of the local DynamoDB, the table variables template.yaml sets for it (each table
/// named by its logical id), and the local cursor secret.
pub fn local_function_env(
    template: &template::Template,
    binary: &str,
    endpoint: &str,
) -> Result<Vec<(String, String)>> {
    let function = template
        .function_for_binary(binary)
        .ok_or_else(|| format!("template.yaml builds no {binary}"))?;
    let mut variables: Vec<(String, String)> = LOCAL_AWS_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    variables.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), endpoint.to_owned()));
    variables.push(("CURSOR_SECRET".into(), LOCAL_CURSOR_SECRET.into()));
    variables.extend(template.table_variables(&function));
    Ok(variables)
}

/// The SDK configuration of a client for a local server at `endpoint`: the functions' own, with
/// the local region and credentials.
pub fn local_sdk(endpoint: &str) -> users::sdk::SdkConfig {
    let credentials = Credentials::new("local", "local", None, None, "local");
    users::sdk::fixed("us-east-1", credentials, endpoint)
}

/// A client for a local DynamoDB-compatible server, configured like the functions' own.
pub fn local_client(endpoint: &str) -> Client {
    Client::new(&local_sdk(endpoint))
}

/// The workspace root, where `template.yaml`, `events/` and `README.md` are.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn deployed_builds_unwind_on_a_panic() {
        // cargo lambda (sam build's builder) sets `panic = "abort"` in release builds unless
        // the workspace's release profile names a panic strategy of its own.
        let manifest = std::fs::read_to_string(super::workspace_root().join("Cargo.toml"))
            .expect("the workspace manifest");
        let release = manifest
            .split("\n[")
            .find(|section| section.starts_with("profile.release]"))
            .expect("a release profile");
        assert!(
            release
                .lines()
                .any(|line| line.trim() == r#"panic = "unwind""#),
            "{release}"
        );
    }

    #[test]
    fn tools_do_not_inherit_the_package_variables_cargo_gave_this_process() {
        // `cargo test` sets them for this process, as `cargo run` does for `cargo xtask`.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let command = super::tool("true");
        let removed: Vec<_> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        assert!(removed.iter().any(|name| name == "CARGO_PKG_NAME"));
        assert!(removed.iter().any(|name| name == "CARGO_MANIFEST_DIR"));
        assert!(!removed.iter().any(|name| name == "PATH"));
    }
}
