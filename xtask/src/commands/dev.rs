//! The local run: Dynoxide with a data file, tables from template.yaml, `cargo lambda watch`,
//! and the users table's stream fed to publish-events, whose events go to a bus on moto and are
//! printed in the terminal.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use xtask::moto::{self, Moto};
use xtask::template::Template;
use xtask::{Result, all_functions, cargo, embedded, events_feed, tools, workspace_root};

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

    // EventBridge has no local server of AWS's own: moto stands in, with a bus whose rule sends
    // every event to a queue this command reads and prints.
    let events = tokio::task::spawn_blocking(Moto::start).await??;
    let bus = moto::provision(&events.endpoint, "users-local").await?;
    eprintln!(
        "events: moto on {}, bus {}; they are printed here as they arrive",
        events.endpoint, bus.bus_name
    );

    let mut variables = Vec::new();
    for binary in all_functions() {
        variables.extend(xtask::local_function_env(&template, binary, &endpoint)?);
    }
    variables.extend([
        ("EVENT_BUS_NAME".into(), bus.bus_name.clone()),
        (
            "DEAD_LETTER_QUEUE_URL".into(),
            bus.dead_letter_queue_url.clone(),
        ),
        (
            "AWS_ENDPOINT_URL_EVENTBRIDGE".into(),
            events.endpoint.clone(),
        ),
        ("AWS_ENDPOINT_URL_SQS".into(), events.endpoint.clone()),
    ]);
    variables.sort();
    variables.dedup();

    // Built one by one, as cargo lambda watch builds them, so that its first requests find
    // them ready instead of compiling while the client waits.
    for function in all_functions() {
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
    let users_table = template
        .tables()?
        .into_iter()
        .find(|table| table.logical_id == "UsersTable")
        .ok_or("template.yaml has no UsersTable")?
        .logical_id;
    let feed = tokio::spawn(events_feed::run(
        endpoint.clone(),
        users_table,
        options.port,
        events.endpoint.clone(),
        bus,
    ));

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
    feed.abort();
    drop(events);
    let _ = stop_database.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    outcome
}
