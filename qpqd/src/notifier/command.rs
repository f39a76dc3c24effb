//! The `notify_command` hook: an argv (never a shell) run once per
//! notification with its JSON object on stdin. At most [`MAX_RUNNING`] run
//! at once (a notification finding them all busy is dropped and counted);
//! each is killed, with every process it started in its process group,
//! past its deadline. A failure is logged, never fatal.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Commands running at once, at most.
pub const MAX_RUNNING: usize = 4;

/// Runs the configured command.
#[derive(Clone)]
pub struct Command {
    argv: Arc<[String]>,
    deadline: Duration,
    running: Arc<Semaphore>,
}

impl Command {
    pub fn new(argv: Vec<String>, deadline: Duration) -> Self {
        Command {
            argv: argv.into(),
            deadline,
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
        }
    }

    /// Starts the command with `input` on its stdin, in the background;
    /// `false` (nothing started) while [`MAX_RUNNING`] are still running.
    pub fn start(&self, input: Vec<u8>) -> bool {
        let Ok(permit) = Arc::clone(&self.running).try_acquire_owned() else {
            return false;
        };
        let (argv, deadline) = (Arc::clone(&self.argv), self.deadline);
        tokio::spawn(async move {
            if let Err(e) = run(&argv, &input, deadline).await {
                tracing::warn!(command = %argv[0], error = %e, "the notify command failed");
            }
            drop(permit);
        });
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not start it: {0}")]
    Spawn(std::io::Error),
    #[error("it ran longer than {} s and was killed", .0.as_secs_f32())]
    Deadline(Duration),
    #[error("it exited with {0}")]
    Status(std::process::ExitStatus),
    #[error("waiting for it: {0}")]
    Wait(std::io::Error),
}

async fn run(argv: &[String], input: &[u8], deadline: Duration) -> Result<(), CommandError> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        // The state's passphrase, when the daemon was given it this way,
        // is no business of a hook's.
        .env_remove("QPQ_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: the deadline kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(CommandError::Spawn)?;
    let mut stdin = child.stdin.take();
    let finished = tokio::time::timeout(deadline, async {
        if let Some(stdin) = stdin.as_mut() {
            // A command that does not read its input (or exits first) is
            // no failure of ours.
            let _ = stdin.write_all(input).await;
            let _ = stdin.shutdown().await;
        }
        drop(stdin.take());
        child.wait().await
    })
    .await;
    match finished {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(CommandError::Status(status)),
        Ok(Err(e)) => Err(CommandError::Wait(e)),
        Err(_) => {
            if let Some(pid) = child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32))
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            Err(CommandError::Deadline(deadline))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_gets_its_input_and_a_hanging_one_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("cat > '{}'", out.display());
        let argv = ["sh".to_owned(), "-c".to_owned(), script];
        run(&argv, b"{\"count\":1}", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"count\":1}");

        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > '{}'; wait", pid_file.display());
        let argv = ["sh".to_owned(), "-c".to_owned(), script];
        let e = run(&argv, b"{}", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Deadline(_)), "{e}");
        // The grandchild went with the group.
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        quicproquo_testkit::agent::eventually("the sleep the hook started is killed", || async {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
            // Gone, or a zombie waiting for its new parent to reap it.
            stat.map_or(true, |s| s.contains(") Z ")).then_some(())
        })
        .await
        .unwrap();

        let e = run(
            &["/nonexistent/hook".to_owned()],
            b"{}",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, CommandError::Spawn(_)), "{e}");
        let e = run(&["false".to_owned()], b"{}", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Status(_)), "{e}");
    }

    /// At most `MAX_RUNNING` at once: one more is refused (the caller
    /// counts it dropped), and a slot frees when one ends.
    #[tokio::test]
    async fn commands_beyond_the_running_limit_are_refused_until_one_ends() {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("go");
        // Each waits for the gate (bounded by its deadline).
        let script = format!("while [ ! -e '{}' ]; do sleep 0.05; done", gate.display());
        let c = Command::new(
            vec!["sh".into(), "-c".into(), script],
            Duration::from_secs(20),
        );
        for _ in 0..MAX_RUNNING {
            assert!(c.start(b"{}".to_vec()));
        }
        assert!(!c.start(b"{}".to_vec()), "a fifth while four run");
        std::fs::write(&gate, "").unwrap();
        quicproquo_testkit::agent::eventually("a slot frees", || async {
            (c.running.available_permits() == MAX_RUNNING).then_some(())
        })
        .await
        .unwrap();
        assert!(c.start(b"{}".to_vec()));
    }
}
