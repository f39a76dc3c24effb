//! Issue 18 in two real terminals: alice `/attach`es a file in her qpq-tui
//! (the path completed with Tab), bob's qpq-tui shows its 📎 line, bob
//! saves it with the save key and the bytes are the same; then alice drops
//! an image onto her terminal (a bracketed paste of its path), and bob's
//! TUI downloads and previews it by itself. Real agents, a real
//! server, and the daemon's upload and download.

use quicproquo_testkit::agent::eventually;
use quicproquo_testkit::skip::skip;

use crate::tmux::Tmux;
use crate::Pair;

const TEST: &str = "attach_in_one_terminal_save_and_preview_in_the_other";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_in_one_terminal_save_and_preview_in_the_other() {
    let Some(tmux) = Tmux::available() else {
        skip(TEST, "tmux is not installed");
        return;
    };
    let Pair {
        dir,
        mut server,
        alice_home,
        bob_home,
        mut alice,
        mut bob,
        ac: _ac,
        bc: _bc,
    } = Pair::in_a_dm().await;
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    // 300 kB of bytes that are not all alike: several chunks and pieces.
    let bytes: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let original = files.join("quarterly report.bin");
    std::fs::write(&original, &bytes).unwrap();
    let downloads = dir.path().join("bob downloads");

    let a = tmux
        .start(env!("CARGO_BIN_EXE_qpq-tui"), &alice_home, 100, 30)
        .unwrap();
    let b = tmux
        .start_with(
            env!("CARGO_BIN_EXE_qpq-tui"),
            &bob_home,
            100,
            30,
            std::path::Path::new("/nonexistent/qpqd"),
            &format!("export XDG_DOWNLOAD_DIR='{}'\n", downloads.display()),
        )
        .unwrap();
    a.wait_for("hi bob").await;
    b.wait_for("hi bob").await;

    // What the daemon refuses is said in its words.
    a.type_text("/attach /nonexistent/file.bin");
    a.keys(&["Enter"]);
    a.wait_for("Not attached: ").await;

    // Tab completes the path (the space escaped), then a caption.
    a.type_text(&format!("/attach {}/quar", files.display()));
    a.keys(&["Tab"]);
    a.wait_for("quarterly\\ report.bin").await;
    a.type_text("the numbers");
    a.keys(&["Enter"]);
    // Her own line, and the upload ends (no progress line left).
    a.wait_until(|s| s.contains("📎 quarterly report.bin · 300 kB") && !s.contains("uploading"))
        .await;

    // bob sees it with its caption, selects it and saves it.
    b.wait_until(|s| s.contains("📎 quarterly report.bin · 300 kB") && s.contains("the numbers"))
        .await;
    b.keys(&["S-Up"]);
    b.keys(&["s"]);
    b.wait_for("Saved quarterly report.bin to").await;
    let saved = downloads.join("quarterly report.bin");
    assert_eq!(std::fs::read(&saved).unwrap(), bytes, "byte-identical");
    // Saving again never overwrites: a second name.
    b.keys(&["s"]);
    let second = downloads.join("quarterly report (1).bin");
    eventually("the second copy is saved", || {
        let (path, want) = (second.clone(), bytes.clone());
        async move { (std::fs::read(&path).ok()? == want).then_some(()) }
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), bytes, "the first untouched");
    b.keys(&["Escape"]);

    // An image: bob's TUI downloads it by itself and draws a preview.
    let png = files.join("dot.png");
    image::RgbImage::from_pixel(32, 16, image::Rgb([200, 30, 30]))
        .save(&png)
        .unwrap();
    // Dropped onto alice's terminal (a bracketed paste of its quoted
    // path): she is asked, and `y` attaches it.
    a.paste(&format!("'{}'", png.display()));
    a.wait_for("Attach dot.png (").await;
    a.keys(&["y"]);
    b.wait_until(|s| s.contains("📎 dot.png") && s.contains("▀▀▀▀▀▀▀▀"))
        .await;

    drop(a);
    drop(b);
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}
