//! Skipping a test whose environment is missing — and never in CI.
//!
//! A test that needs something this machine may not have (a Secret Service,
//! root, `tmux`, `jq`) calls [`skip`] when it is missing: locally it prints
//! why and the test returns; with `QPQ_TEST_REQUIRE_ALL=1` (which `.ci/run`
//! sets) it fails instead, so a green CI never hides a test that did not run.

/// The variable that turns every skip into a failure.
pub const REQUIRE_ALL: &str = "QPQ_TEST_REQUIRE_ALL";

/// Whether skips are failures in this run.
pub fn required() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| v == "1")
}

/// Reports that `test` cannot run here because of `why`: a panic under
/// [`REQUIRE_ALL`], else a line on stderr. The caller returns after it.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test} cannot run: {why}, and {REQUIRE_ALL}=1 forbids skipping");
    }
    eprintln!("skipped {test}: {why} (set {REQUIRE_ALL}=1 to make this a failure)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_fails_when_everything_is_required() {
        // The variable is read at the call; set it only in a child process
        // so other tests in this binary are unaffected.
        if std::env::var_os("QPQ_SKIP_CHILD").is_some() {
            skip("the child", "nothing is missing really");
            return;
        }
        let me = std::env::current_exe().unwrap();
        let run = |require: &str| {
            crate::process::output_blocking(
                std::process::Command::new(&me)
                    .args([
                        "--exact",
                        "--nocapture",
                        "skip::tests::a_skip_fails_when_everything_is_required",
                    ])
                    .env("QPQ_SKIP_CHILD", "1")
                    .env(REQUIRE_ALL, require),
            )
            .unwrap()
        };
        let strict = run("1");
        assert!(
            !strict.status.success(),
            "a skip under {REQUIRE_ALL}=1 fails"
        );
        let lenient = run("0");
        assert!(lenient.status.success(), "a skip without it passes");
        assert!(String::from_utf8_lossy(&lenient.stderr).contains("skipped the child"));
    }
}
