//! What starting a local server as a child process takes: a free port, and waiting until it
//! listens there.

use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::Result;

/// How long a local server may take to listen: DynamoDB Local's JVM and moto's Python are slow
/// to start on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A port of 127.0.0.1 no one listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `server`, started as `child`, listens on `port` of 127.0.0.1: an error if it
/// exits first or takes longer than [`START_TIMEOUT`].
pub fn wait_until_listening(child: &mut Child, port: u16, server: &str) -> Result<()> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            return Err(format!("{server} exited: {status}").into());
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!("{server} did not listen within {START_TIMEOUT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
