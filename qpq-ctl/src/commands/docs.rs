//! `completions` and `man`: generated from the clap definitions in
//! [`crate::cli`], so they never disagree with `--help`. Both are rendered
//! into memory first (the generators panic on a failed write) and printed
//! through [`Out`], so `| head` ends quietly; `--json` does not apply.

use std::fmt::Write as _;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::Out;

pub fn completions(out: &mut Out, shell: clap_complete::Shell) -> Result<Exit, CtlError> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "qpq-ctl", &mut script);
    out.write(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Ok)
}

pub fn man(out: &mut Out, out_dir: Option<&Path>) -> Result<Exit, CtlError> {
    let mut cmd = Cli::command();
    cmd.build();
    match out_dir {
        None => out.write(&String::from_utf8_lossy(&main_page(&cmd)?))?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CtlError::io(format!("creating {}", dir.display()), e))?;
            let mut written = Vec::new();
            write_page(dir, "qpq-ctl.1", &main_page(&cmd)?, &mut written)?;
            for sub in subcommands(&cmd) {
                let man = clap_mangen::Man::new(sub.clone());
                let mut page = Vec::new();
                man.render(&mut page)
                    .map_err(|e| CtlError::io("rendering a man page", e))?;
                write_page(dir, &man.get_filename(), &page, &mut written)?;
            }
            for path in written {
                out.line(&path)?;
            }
        }
    }
    Ok(Exit::Ok)
}

/// Every visible subcommand, depth first.
fn subcommands(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut all = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        all.push(sub);
        all.extend(subcommands(sub));
    }
    all
}

fn write_page(
    dir: &Path,
    name: &str,
    page: &[u8],
    written: &mut Vec<String>,
) -> Result<(), CtlError> {
    let path = dir.join(name);
    std::fs::write(&path, page)
        .map_err(|e| CtlError::io(format!("writing {}", path.display()), e))?;
    written.push(path.display().to_string());
    Ok(())
}

/// qpq-ctl(1): clap_mangen's sections, then EXIT STATUS, ENVIRONMENT and
/// FILES, which clap has no place for.
fn main_page(cmd: &clap::Command) -> Result<Vec<u8>, CtlError> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    let render = |e| CtlError::io("rendering the man page", e);
    man.render_title(&mut page).map_err(render)?;
    man.render_name_section(&mut page).map_err(render)?;
    man.render_synopsis_section(&mut page).map_err(render)?;
    man.render_description_section(&mut page).map_err(render)?;
    man.render_options_section(&mut page).map_err(render)?;
    man.render_subcommands_section(&mut page).map_err(render)?;
    let mut extra = String::from(".SH \"EXIT STATUS\"\n");
    for e in Exit::ALL {
        let _ = write!(
            extra,
            ".TP\n\\fB{}\\fR\n{}\n",
            e.code(),
            roff_text(e.meaning())
        );
    }
    extra.push_str(".SH \"CONVERSATIONS\"\n");
    extra.push_str(&roff_text(
        "A conversation is named by its name, its id (32 hex digits), or @username for the \
         DM with that user.",
    ));
    extra.push_str("\n.SH ENVIRONMENT\n");
    for (var, what) in ENVIRONMENT {
        let _ = write!(extra, ".TP\n\\fB{var}\\fR\n{}\n", roff_text(what));
    }
    extra.push_str(".SH FILES\n");
    for (file, what) in FILES {
        let _ = write!(
            extra,
            ".TP\n\\fI{}\\fR\n{}\n",
            roff_text(file),
            roff_text(what)
        );
    }
    page.extend_from_slice(extra.as_bytes());
    man.render_version_section(&mut page).map_err(render)?;
    Ok(page)
}

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "QPQ_PROFILE",
        "the profile when --profile is not given (default: default)",
    ),
    (
        "QPQ_SERVER",
        "the server of register and login when --server is not given",
    ),
    (
        "QPQ_DATA_DIR",
        "where profiles keep their state, instead of $XDG_DATA_HOME/quicproquo",
    ),
    (
        "QPQ_DAEMON",
        "the qpqd program to start, instead of the one next to qpq-ctl or on PATH",
    ),
    (
        "QPQ_PASSPHRASE",
        "read by a qpqd that qpq-ctl starts: the state passphrase where no OS keyring is available",
    ),
    (
        "XDG_RUNTIME_DIR",
        "where the daemon's socket lives (unset: in .run of the data directory)",
    ),
    (
        "NO_COLOR",
        "when set and not empty, no colour even on a terminal",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "$XDG_RUNTIME_DIR/quicproquo/PROFILE.sock",
        "the daemon's socket",
    ),
    (
        "DATA_DIR/PROFILE/qpq-ctl.seq",
        "where the last recv stopped (qpq-ctl-ID.seq per --conversation)",
    ),
    (
        "DATA_DIR/PROFILE/qpqd.log",
        "the log of a qpqd that a front-end started",
    ),
];

/// Plain text for a roff body line: backslashes and hyphens escaped, and a
/// leading `.` or `'` kept from reading as a request.
fn roff_text(s: &str) -> String {
    let escaped = s.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_page_has_every_command_and_status() {
        let mut cmd = Cli::command();
        cmd.build();
        let page = String::from_utf8(main_page(&cmd).unwrap()).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH qpq\\-ctl 1"),
            "{}",
            &page[..200]
        );
        for sub in [
            "daemon",
            "register",
            "send",
            "recv",
            "verify",
            "completions",
        ] {
            assert!(page.contains(sub), "{sub}");
        }
        assert!(page.contains("EXIT STATUS"));
        for e in Exit::ALL {
            assert!(page.contains(&format!("\\fB{}\\fR", e.code())), "{e:?}");
        }
        assert_eq!(roff_text(".x-y\\"), "\\&.x\\-y\\e");
    }

    #[test]
    fn every_command_gets_a_page() {
        let mut cmd = Cli::command();
        cmd.build();
        let names: Vec<String> = subcommands(&cmd)
            .into_iter()
            .map(|c| clap_mangen::Man::new(c.clone()).get_filename())
            .collect();
        assert!(names.contains(&"qpq-ctl-send.1".to_owned()), "{names:?}");
        assert!(
            names.contains(&"qpq-ctl-group-rekey.1".to_owned()),
            "{names:?}"
        );
    }
}
