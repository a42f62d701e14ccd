//! Minimal hand-written HTTP/1.1 requests to loopback servers, for readiness
//! probes and helpers (testkit has no HTTP client dependency).

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::ports;

/// One HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close`, the
/// given extra `headers` and `body`; returns the status code and the body.
///
/// The body is read by `Content-Length` (servers such as chromedriver keep
/// the connection open despite `Connection: close`); a response without it
/// has an empty body here, which is all the probes need.
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<(u16, String)> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = ports::connect(port)?;
    stream.write_all(request.as_bytes())?;

    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad HTTP response: {what}"),
        )
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(&line))?;
    let mut content_length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("headers cut short"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().map_err(|_| bad(header))?;
            }
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
