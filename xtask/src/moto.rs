//! moto in server mode on 127.0.0.1: an EventBridge and an SQS of our own, for the events'
//! tests and the local run. A bus with a rule that sends the service's events to a queue lets
//! them be read back; a second queue stands for the dead-letter queue.

use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_eventbridge::types::Target;

use crate::local_server::{free_port, wait_until_listening};
use crate::{Result, tools};

/// moto's account, in the ARNs it makes.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// The server; it stops when dropped, or when the process that started it ends.
pub struct Moto {
    child: Child,
    /// Held open: the server's wrapper stops it when this closes, however this process ends.
    _lifeline: Option<ChildStdin>,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Result<Self> {
        let bin = tools::moto()?;
        let port = free_port()?;
        // The shell stops moto when its standard input closes: at this process's end, even
        // one that never runs a destructor.
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & read _; kill $!"#,
            ])
            .arg(bin.join("moto_server"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start moto: {e}"))?;
        let lifeline = child.stdin.take();
        let mut moto = Self {
            child,
            _lifeline: lifeline,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_until_listening(&mut moto.child, port, "moto")?;
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing the wrapper's input stops moto; the wrapper then exits.
        self._lifeline.take();
        let _ = self.child.wait();
    }
}

/// A bus named `name` whose events from the service reach the queue `delivered`, and a queue
/// for dead letters, all created at `endpoint`.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub bus_name: String,
    pub delivered_queue_url: String,
    pub dead_letter_queue_url: String,
}

pub async fn provision(endpoint: &str, name: &str) -> Result<Provisioned> {
    let sdk = crate::local_sdk(endpoint);
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (delivered_queue_url, delivered_arn) = queue(&sqs, &format!("{name}-delivered")).await?;
    let (dead_letter_queue_url, _) = queue(&sqs, &format!("{name}-dead-letters")).await?;
    events.create_event_bus().name(name).send().await?;
    let rule = format!("{name}-all");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(name)
        .event_pattern(r#"{"source": ["users-service"]}"#)
        .send()
        .await?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(name)
        .targets(Target::builder().id("queue").arn(delivered_arn).build()?)
        .send()
        .await?;
    Ok(Provisioned {
        bus_name: name.to_owned(),
        delivered_queue_url,
        dead_letter_queue_url,
    })
}

/// A new queue's URL and ARN.
async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<(String, String)> {
    let created = sqs.create_queue().queue_name(name).send().await?;
    let url = created
        .queue_url()
        .ok_or("moto returned no queue URL")?
        .to_owned();
    Ok((url, format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")))
}

/// Takes what `queue_url` holds, and deletes it from the queue: once at least `wanted`
/// messages came and the queue is empty, or when `patience` has passed with nothing new.
pub async fn drain(
    endpoint: &str,
    queue_url: &str,
    wanted: usize,
    patience: Duration,
) -> Result<Vec<String>> {
    let sqs = aws_sdk_sqs::Client::new(&crate::local_sdk(endpoint));
    let mut bodies = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await?;
        let messages = received.messages();
        if messages.is_empty() {
            if bodies.len() >= wanted || quiet_since.elapsed() >= patience {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        quiet_since = Instant::now();
        for message in messages {
            bodies.extend(message.body().map(str::to_owned));
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
    Ok(bodies)
}
