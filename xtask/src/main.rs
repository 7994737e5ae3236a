//! `cargo xtask dev`: run the service locally. `cargo xtask test`: every check CI runs.
//! `cargo xtask bench`: the numbers under a model of Lambda, beside a Python peer.
//! `cargo xtask deploy`: build and deploy a samconfig.toml environment, every change publishing
//! a new version.

mod commands;

use std::process::ExitCode;

const USAGE: &str = "\
usage:
  cargo xtask dev [--port PORT] [--data-dir DIR]
      Serves the API on http://127.0.0.1:PORT (default 9000) with cargo lambda watch, on an
      embedded Dynoxide whose data lives in DIR (default .local/). Ctrl-C stops everything.
  cargo xtask test
      Every check CI runs: fmt, clippy, cargo deny, the template checks, the test suite on
      Dynoxide and on DynamoDB Local, a smoke test of `cargo xtask dev` with Schemathesis on
      openapi.yaml, and sam build for Graviton.
  cargo xtask bench [--cold N] [--warm N] [--users N] [--dynamodb-local] [--no-arm64]
                    [--function NAME]... [--memory MB]... [--profile PROFILE]
                    [--dynamodb-latency-ms MS] [--cfs-period-ms MS] [--pace-ms MS]
                    [--throttle-init] [--latency-bound-ms MS]
      The release functions under a model of Lambda (each memory size's CPU share as a CFS
      quota, DynamoDB over TLS with a round trip per request), beside a bare hello-world and a
      Python peer: cold request, billed warm latency back to back and paced, DynamoDB round
      trips, CPU, memory, size, cost per million requests, the memory size to deploy (defaults:
      10 cold starts and 200 warm invocations per series at 128, 256, 512 and 1024 MB and on the
      whole CPU, 2 ms per DynamoDB request, a 20 ms CFS period, 20 ms pacing, init on the whole
      CPU, a 50 ms p99 bound, 10000 seeded users, on Dynoxide, every function, arm64 sizes, the
      release profile).
  cargo xtask deploy [--config-env ENV] [-- SAM DEPLOY OPTIONS...]
      sam build for Graviton, then sam deploy of samconfig.toml's ENV (default: default) with
      its parameters and a ReleaseDigest of the built code, properties and parameter values,
      so that every change to a function, a parameter's value included, publishes a version.";

/// `[--config-env ENV] [-- SAM DEPLOY OPTIONS...]`.
fn deploy(args: &[String]) -> xtask::Result<()> {
    let (own, extra) = match args.iter().position(|a| a == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (args, &[][..]),
    };
    let environment = match own {
        [] => "default",
        [flag, environment] if flag == "--config-env" => environment.as_str(),
        _ => return Err(format!("unexpected arguments {own:?}\n{USAGE}").into()),
    };
    commands::deploy_checks::deploy(&xtask::workspace_root(), environment, extra)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => commands::dev::Options::parse(&args[1..]).and_then(commands::dev::run),
        Some("test") if args.len() == 1 => commands::test::run(),
        Some("bench") => commands::bench::Options::parse(&args[1..]).and_then(commands::bench::run),
        Some("deploy") => deploy(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}
