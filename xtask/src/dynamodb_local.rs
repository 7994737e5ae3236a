//! The official DynamoDB Local (Java), in memory on 127.0.0.1, stopped when dropped.

use std::process::{Child, Command, Stdio};

use crate::local_server::{free_port, wait_until_listening};
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
        wait_until_listening(&mut local.child, port, "DynamoDB Local")?;
        Ok(local)
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
