//! A static web server for registry tests: serves a folder over HTTP (or HTTPS with a
//! given certificate) on 127.0.0.1, with ETags (sha256 of the body, `304` on
//! `If-None-Match`), and counts what it answered so tests can see caching work.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// What the server answered, per path: (status, count).
pub type Log = Arc<Mutex<BTreeMap<(String, u16), usize>>>;

pub struct WebServer {
    pub url: String,
    pub log: Log,
}

impl WebServer {
    /// Serve `root` over plain HTTP.
    pub fn start(root: &Path) -> WebServer {
        WebServer::serve(root, None)
    }

    /// Serve `root` over HTTPS with this certificate chain and key (PEM).
    pub fn start_tls(root: &Path, cert_pem: &[u8], key_pem: &[u8]) -> WebServer {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        WebServer::serve(root, Some(Arc::new(config)))
    }

    /// How often `path` was answered with `status`.
    pub fn count(&self, path: &str, status: u16) -> usize {
        *self
            .log
            .lock()
            .unwrap()
            .get(&(path.to_owned(), status))
            .unwrap_or(&0)
    }

    fn serve(root: &Path, tls: Option<Arc<rustls::ServerConfig>>) -> WebServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Log = Arc::default();
        let (root, log2) = (root.to_path_buf(), log.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (root, log, tls) = (root.clone(), log2.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                    match tls {
                        Some(config) => {
                            let Ok(conn) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            answer(rustls::StreamOwned::new(conn, stream), &root, &log);
                        }
                        None => answer(stream, &root, &log),
                    }
                });
            }
        });
        WebServer {
            url: format!("{scheme}://127.0.0.1:{port}/"),
            log,
        }
    }
}

fn answer(mut stream: impl Read + Write, root: &Path, log: &Log) {
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut if_none_match = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_owned());
            }
        }
    }
    let rel = path.trim_start_matches('/');
    let file = root.join(rel);
    let (status, body, etag) = match std::fs::read(&file) {
        Ok(bytes) if !rel.contains("..") => {
            let etag = format!("\"{}\"", hex(&Sha256::digest(&bytes)));
            if if_none_match.as_deref() == Some(etag.as_str()) {
                (304, Vec::new(), Some(etag))
            } else {
                (200, bytes, Some(etag))
            }
        }
        _ => (404, b"not found".to_vec(), None),
    };
    *log.lock().unwrap().entry((path, status)).or_default() += 1;
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        _ => "Not Found",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(e) = etag {
        head.push_str(&format!("ETag: {e}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
