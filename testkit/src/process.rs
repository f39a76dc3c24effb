//! Child processes a test runs to completion: each runs under
//! [`crate::WAIT`] and is killed past it, so a regression that hangs one
//! fails the test instead of hanging CI. Standard input is closed, as
//! `Command::output` does by default.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion and returns its output; panics if it cannot
/// start or outlives [`crate::WAIT`] (it is killed then).
pub async fn output(cmd: &mut tokio::process::Command) -> Output {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(crate::WAIT, cmd.output()).await {
        Ok(out) => out.unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")),
        Err(_) => panic!("{cmd:?} did not finish within {:?}", crate::WAIT),
    }
}

/// [`output`] for a blocking `std::process::Command` (sync tests, `Drop`).
/// An error only when it cannot start (a missing program); a hang panics.
pub fn output_blocking(cmd: &mut Command) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes are read while waiting: a child that fills one would
    // otherwise block forever.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + crate::WAIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {:?}", crate::WAIT);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
