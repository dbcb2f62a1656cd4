//! One line for an error and the errors under it: the library's typed
//! errors keep their causes as sources, and this is the one printer that
//! shows them, in logs and in the CLI's `muster: error: top: cause: cause`.

/// The error and its sources on one line, each source once: libraries often
/// say only "connection error" (hyper) or hide the io error inside (bollard),
/// while the cause (a TLS alert, a refused connection) is what tells an
/// operator what to fix.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn causes_follow_the_error_once_each() {
        let io = std::io::Error::other("received fatal alert: CertificateRequired");
        let outer = std::io::Error::new(std::io::ErrorKind::ConnectionReset, io);
        // io::Error's Display already shows a custom inner error: not repeated.
        assert_eq!(
            error_chain(&outer),
            "received fatal alert: CertificateRequired"
        );
        let fmt = std::fmt::Error;
        assert_eq!(error_chain(&fmt), fmt.to_string());
    }
}
