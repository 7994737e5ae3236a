//! Dynoxide, the embedded DynamoDB-compatible server, on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;

use dynoxide::Database;

use crate::Result;

/// Serves `database` (a SQLite file, or memory when `None`) on 127.0.0.1:`port` (0 picks a free
/// port) until `shutdown` resolves. Returns the address once it is listening.
pub async fn serve(
    database: Option<&Path>,
    port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let db = match database {
        Some(path) => {
            let path = path.to_str().ok_or("the database path is not UTF-8")?;
            Database::new(path).map_err(|e| format!("cannot open Dynoxide database {path}: {e}"))?
        }
        None => Database::memory().map_err(|e| format!("cannot start Dynoxide: {e}"))?,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move {
        if let Err(e) = dynoxide::server::serve_with_shutdown(listener, db, shutdown).await {
            eprintln!("Dynoxide stopped: {e}");
        }
    });
    Ok((address, server))
}
