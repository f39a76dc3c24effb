//! Line framing: one JSON object per `\n`-terminated line, at most
//! [`MAX_LINE`] bytes.
//!
//! [`check`] and [`parse`] work on a byte buffer in the mini-redis manner:
//! `Incomplete` is the normal "read more" outcome, and a line that grows past
//! the limit is an error rather than unbounded buffering. [`LineBuffer`] is
//! the small state machine both read loops (daemon and client) drive with the
//! bytes they read: it yields complete lines, skips blank ones, and after an
//! over-long line reports it once and discards input up to the next newline
//! so the connection stays usable. It does no I/O.

/// The longest line accepted, excluding its `\n`.
pub const MAX_LINE: usize = 1024 * 1024;

/// The most bytes of messages one `history` or `search` reply carries (the
/// JSON of its messages). A quarter under [`MAX_LINE`] leaves room for the
/// envelope, so a reply always fits whatever the messages hold; a reply cut
/// short by it says so by holding fewer messages than asked (the caller
/// pages on, see docs/src/reference/ipc.md).
pub const MAX_REPLY_BYTES: usize = 768 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// No complete line is buffered yet: read more.
    #[error("incomplete line")]
    Incomplete,
    /// The line is longer than [`MAX_LINE`]. Answer `-32600` and skip to the
    /// next newline.
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
}

/// Whether `buf` starts with a complete line: `Ok(n)` when `buf[..n]` is one,
/// its `\n` included.
pub fn check(buf: &[u8]) -> Result<usize, LineError> {
    let window = &buf[..buf.len().min(MAX_LINE + 1)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Ok(i + 1),
        None if buf.len() > MAX_LINE => Err(LineError::TooLong),
        None => Err(LineError::Incomplete),
    }
}

/// The first line of `buf` without its `\n`, and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<(&[u8], usize), LineError> {
    let n = check(buf)?;
    Ok((&buf[..n - 1], n))
}

/// Buffers a byte stream and yields its lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    start: usize,
    /// Discarding the rest of an over-long line.
    skipping: bool,
}

impl LineBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn extend(&mut self, mut bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.skipping {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.skipping = false;
                    bytes = &bytes[i + 1..];
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete, non-blank line (without its `\n`); `None` when more
    /// input is needed. `Some(Err(TooLong))` is reported once per over-long
    /// line, whose bytes are then dropped.
    pub fn next_line(&mut self) -> Option<Result<&[u8], LineError>> {
        loop {
            let rest = &self.buf[self.start..];
            match parse(rest) {
                Ok((line, n)) => {
                    let from = self.start;
                    self.start += n;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok(&self.buf[from..from + line.len()]));
                }
                Err(LineError::Incomplete) => return None,
                Err(LineError::TooLong) => {
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => self.start += i + 1,
                        None => {
                            self.buf.clear();
                            self.start = 0;
                            self.skipping = true;
                        }
                    }
                    return Some(Err(LineError::TooLong));
                }
            }
        }
    }

    /// Bytes buffered and not yet handed out (a partial line).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(lb: &mut LineBuffer) -> Vec<Result<String, LineError>> {
        let mut out = Vec::new();
        while let Some(line) = lb.next_line() {
            out.push(line.map(|l| String::from_utf8(l.to_vec()).unwrap()));
        }
        out
    }

    #[test]
    fn check_finds_one_line() {
        assert_eq!(check(b""), Err(LineError::Incomplete));
        assert_eq!(check(b"{\"a\":1}"), Err(LineError::Incomplete));
        assert_eq!(check(b"{}\n{}"), Ok(3));
        assert_eq!(check(b"\n"), Ok(1));
        assert_eq!(parse(b"abc\ndef\n"), Ok((&b"abc"[..], 4)));
    }

    #[test]
    fn limit_is_exact() {
        let mut max = vec![b'x'; MAX_LINE];
        assert_eq!(check(&max), Err(LineError::Incomplete));
        max.push(b'\n');
        assert_eq!(check(&max), Ok(MAX_LINE + 1));
        let mut over = vec![b'x'; MAX_LINE + 1];
        assert_eq!(check(&over), Err(LineError::TooLong));
        over.push(b'\n');
        assert_eq!(check(&over), Err(LineError::TooLong));
    }

    #[test]
    fn buffer_yields_lines_across_reads_and_skips_blank_ones() {
        let mut lb = LineBuffer::new();
        lb.extend(b"{\"a\"");
        assert!(lines(&mut lb).is_empty());
        assert_eq!(lb.pending(), 4);
        lb.extend(b":1}\n\n  \r\n{\"b\":2}\n{\"c\"");
        assert_eq!(
            lines(&mut lb),
            vec![Ok("{\"a\":1}".to_owned()), Ok("{\"b\":2}".to_owned())]
        );
        lb.extend(b":3}\n");
        assert_eq!(lines(&mut lb), vec![Ok("{\"c\":3}".to_owned())]);
        assert_eq!(lb.pending(), 0);
    }

    #[test]
    fn overlong_line_is_reported_once_then_skipped() {
        let mut lb = LineBuffer::new();
        let chunk = vec![b'x'; 64 * 1024];
        let mut errors = 0;
        // 2 MiB without a newline, fed in chunks: memory stays bounded.
        for _ in 0..32 {
            lb.extend(&chunk);
            for line in lines(&mut lb) {
                assert_eq!(line, Err(LineError::TooLong));
                errors += 1;
            }
            assert!(lb.pending() <= MAX_LINE + chunk.len());
        }
        assert_eq!(errors, 1);
        lb.extend(b"still the long line\n{\"ok\":true}\n");
        assert_eq!(lines(&mut lb), vec![Ok("{\"ok\":true}".to_owned())]);
    }

    #[test]
    fn overlong_line_with_newline_in_the_same_read() {
        let mut lb = LineBuffer::new();
        let mut data = vec![b'y'; MAX_LINE + 10];
        data.extend_from_slice(b"\n{}\n");
        lb.extend(&data);
        assert_eq!(
            lines(&mut lb),
            vec![Err(LineError::TooLong), Ok("{}".to_owned())]
        );
    }
}
