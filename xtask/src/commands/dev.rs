//! The local run: Dynoxide with a data file, tables from template.yaml, `cargo lambda watch`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use xtask::template::Template;
use xtask::{FUNCTIONS, Result, cargo, embedded, tools, workspace_root};

pub struct Options {
    port: u16,
    data_dir: PathBuf,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            port: 9000,
            data_dir: workspace_root().join(".local"),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
            match arg.as_str() {
                "--port" => {
                    options.port = value.parse().map_err(|_| format!("bad port {value}"))?
                }
                "--data-dir" => options.data_dir = PathBuf::from(value),
                other => return Err(format!("unknown option {other}").into()),
            }
        }
        Ok(options)
    }
}

pub fn run(options: Options) -> Result<()> {
    let lambda_bin = tools::cargo_lambda()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(options, lambda_bin))
}

async fn serve(options: Options, lambda_bin: PathBuf) -> Result<()> {
    let root = workspace_root();
    std::fs::create_dir_all(&options.data_dir)?;
    let database = options.data_dir.join("dynoxide.db");
    let (stop_database, database_stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, server) = embedded::serve(Some(&database), 0, async {
        let _ = database_stopped.await;
    })
    .await?;
    let endpoint = format!("http://{address}");
    eprintln!("Dynoxide on {endpoint}, data in {}", database.display());

    let template = Template::load(&root.join("template.yaml"))?;
    let client = xtask::local_client(&endpoint);
    template.create_tables(&client).await?;

    let mut variables = Vec::new();
    for binary in FUNCTIONS {
        variables.extend(xtask::local_function_env(&template, binary, &endpoint)?);
    }
    variables.sort();
    variables.dedup();

    // Built one by one, as cargo lambda watch builds them, so that its first requests find
    // them ready instead of compiling while the client waits.
    for function in FUNCTIONS {
        eprintln!("building {function}");
        let built = Command::from(cargo())
            .current_dir(&root)
            .args(["build", "--bin", function])
            .status();
        if !built.await?.success() {
            return Err(format!("{function} does not build").into());
        }
    }

    let path = tools::path_with(&[&lambda_bin])?;
    let mut watch = Command::from(cargo());
    watch
        .current_dir(&root)
        .env("PATH", path)
        .envs(variables.iter().map(|(k, v)| (k, v)))
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &options.port.to_string(),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut watch = watch
        .spawn()
        .map_err(|e| format!("cannot start cargo lambda watch: {e}"))?;
    eprintln!(
        "the API is at http://127.0.0.1:{}/users; Ctrl-C stops it",
        options.port
    );

    let outcome = tokio::select! {
        status = watch.wait() => Err(format!("cargo lambda watch exited: {}", status?).into()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    if outcome.is_ok() {
        eprintln!("stopping");
        // A terminal's Ctrl-C reached cargo lambda watch too; give it a moment to stop.
        if tokio::time::timeout(Duration::from_secs(10), watch.wait())
            .await
            .is_err()
        {
            watch.kill().await?;
        }
    }
    let _ = stop_database.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    outcome
}
