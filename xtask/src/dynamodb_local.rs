//! The official DynamoDB Local (Java), in memory on 127.0.0.1, stopped when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, tools};

pub struct DynamoDbLocal {
    child: Child,
    pub endpoint: String,
}

impl DynamoDbLocal {
    pub fn start() -> Result<Self> {
        let dir = tools::dynamodb_local()?;
        let port = free_port()?;
        let child = Command::new("java")
            .arg(format!(
                "-Djava.library.path={}",
                dir.join("DynamoDBLocal_lib").display()
            ))
            .arg("-jar")
            .arg(dir.join("DynamoDBLocal.jar"))
            .args(["-inMemory", "-disableTelemetry", "-port", &port.to_string()])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start DynamoDB Local (is Java 17 installed?): {e}"))?;
        let mut local = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = local.child.try_wait()? {
                return Err(format!("DynamoDB Local exited: {status}").into());
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err("DynamoDB Local did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(local)
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
