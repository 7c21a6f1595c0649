//! The real binary in a real terminal (tmux, private server socket): the
//! console opens, switches panes, shows why a sample ranks where it does,
//! reviews it — the database shows
//! it approved by the operator, exactly as a Label Studio pull records it —
//! quits, and leaves the terminal as it found it (main screen, cooked mode).
//! Synchronisation is by polling the screen for expected text, with a deadline.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use flywheel::storage::samples::NewSample;
use support::environment::{env_prefix, flywheel_bin, shell_quoted};
use support::{TestDb, block_on, scalar};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Self {
        let socket = format!(
            "flywheel-tui-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let tmux = Self { socket };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-t", "main", "-l", line]);
        self.run(&["send-keys", "-t", "main", "Enter"]);
    }

    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "main", key]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
    }

    /// Poll tmux's newest paste buffer until it holds `text` (what an
    /// application's OSC 52 put there, with `set-clipboard on`).
    fn wait_for_buffer(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Fails while there is no buffer yet.
            let buffer = Command::new("tmux")
                .args(["-L", &self.socket, "show-buffer"])
                .output()
                .expect("tmux show-buffer");
            let held = String::from_utf8_lossy(&buffer.stdout);
            if held == text {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tmux's paste buffer holds {held:?}, not {text:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll the screen until it no longer contains `text`.
    fn wait_for_absent(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.screen().contains(text) {
            assert!(
                Instant::now() < deadline,
                "waited 30 s for {text:?} to go:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll the screen until it contains `text`; panic with the screen at the deadline.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("waited 30 s for {text:?}; the screen shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// True (and says so) when tmux is not installed; CI must have it.
fn skip_without_tmux() -> bool {
    let available = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI");
        eprintln!("skipping: tmux is not installed");
    }
    !available
}

#[test]
fn console_in_tmux_reviews_a_sample_and_restores_the_terminal() {
    if skip_without_tmux() {
        return;
    }
    let db = TestDb::sqlite();
    let text = "cancel my subscription please";
    db.with_store(move |store| async move {
        store
            .upsert_samples(&[NewSample {
                text: text.into(),
                normalized_text: flywheel::text::normalize_for_dedup(text),
                intent: "refund".into(),
                language: Some("en".into()),
                source: flywheel::domain::Provenance::Auto,
                confidence: Some(0.42),
                review_status: flywheel::domain::ReviewStatus::NeedsReview,
                priority: 2,
                occurrences: 3,
                predicted_intent: Some("refund".into()),
                predicted_by_version: Some("router-v1.0.0".into()),
                conversation_id: None,
            }])
            .await
            .unwrap();
    });

    let home = db.data_path();
    let tmux = Tmux::start(100, 30);
    let console = format!(
        "{} {} --data-dir {home} tui",
        env_prefix(home),
        shell_quoted(&flywheel_bin()),
        home = shell_quoted(home),
    );
    tmux.type_line(&format!(
        "cd {} && {console}; echo EXIT=$?",
        shell_quoted(home)
    ));
    tmux.wait_for("1 Capture");
    tmux.wait_for("nothing captured yet");

    tmux.key("Tab");
    tmux.wait_for("review queue · 1 waiting, 1 urgent");
    tmux.wait_for(text);
    // Why it ranks where it does, in one phrase.
    tmux.wait_for("1 of 1: seen 3 times");
    tmux.key("5");
    tmux.wait_for("stage runs");
    tmux.key("2");
    tmux.wait_for(text);
    tmux.key("a");
    tmux.wait_for("approved “cancel my subscription please” as refund");

    let config = db.config();
    let (approved, by_human, annotated) = block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        let counts = (
            scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE review_status = 'approved'").await,
            scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE source = 'human' AND reviewed_at IS NOT NULL").await,
            scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE annotator IS NOT NULL AND annotator <> ''").await,
        );
        store.close().await;
        counts
    });
    assert_eq!((approved, by_human, annotated), (1, 1, 1));

    tmux.key("q");
    let screen = tmux.wait_for("EXIT=0");
    assert!(
        !screen.contains("1 Capture"),
        "the console's screen is gone after quitting:\n{screen}"
    );
    // Cooked mode again: the shell's terminal is not left raw. (The quotes
    // keep the typed command from matching what we wait for.)
    tmux.type_line("stty -a | grep -q -- -icanon && echo RA''W-MODE || echo COO''KED-MODE");
    tmux.wait_for("COOKED-MODE");

    // `flywheel` alone on a terminal opens the console too; SIGTERM (a
    // closing SSH session, `kill`) restores the terminal like `q` does.
    tmux.type_line("clear");
    let bare = console.trim_end_matches(" tui");
    tmux.type_line(&format!("{bare}; echo TERM-EXIT=$?"));
    tmux.wait_for("1 Capture");
    let shell = tmux.run(&["display-message", "-p", "-t", "main", "#{pane_pid}"]);
    let children = Command::new("pgrep")
        .args(["-P", shell.trim()])
        .output()
        .expect("pgrep");
    let pid = String::from_utf8_lossy(&children.stdout).trim().to_string();
    assert!(
        !pid.is_empty() && !pid.contains('\n'),
        "one console process under the shell: {pid:?}"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let screen = tmux.wait_for("TERM-EXIT=0");
    assert!(
        !screen.contains("1 Capture"),
        "screen restored after SIGTERM:\n{screen}"
    );
    tmux.type_line("stty -a | grep -q -- -icanon && echo RA''W-AGAIN || echo COO''KED-AGAIN");
    tmux.wait_for("COOKED-AGAIN");
}

#[test]
fn console_in_tmux_shows_a_suspect_label_and_confirms_it() {
    if skip_without_tmux() {
        return;
    }
    let db = TestDb::sqlite();
    let text = "where is my parcel right now";
    db.with_store(move |store| async move {
        let rows = store
            .upsert_samples(&[NewSample {
                text: text.into(),
                normalized_text: flywheel::text::normalize_for_dedup(text),
                intent: "order_food".into(),
                language: Some("en".into()),
                source: flywheel::domain::Provenance::Import,
                confidence: None,
                review_status: flywheel::domain::ReviewStatus::Approved,
                priority: 5,
                occurrences: 1,
                predicted_intent: None,
                predicted_by_version: None,
                conversation_id: None,
            }])
            .await
            .unwrap();
        store
            .replace_suspects(
                "router-v1.1.0",
                &[flywheel::storage::suspects::NewSuspect {
                    sample_id: rows[0].id,
                    flagged_intent: "order_food".into(),
                    suggested_intent: "track_order".into(),
                    score: 0.91,
                }],
            )
            .await
            .unwrap();
    });

    let tmux = Tmux::start(100, 30);
    open_console(&tmux, &db, "");
    tmux.key("2");
    tmux.wait_for("1 suspect label");
    tmux.wait_for("suspect: model says track_order");
    tmux.wait_for("a confirm the label");
    tmux.key("a");
    tmux.wait_for("approved “where is my parcel right now” as order_food");

    let config = db.config();
    let (confirmed, suspects) = block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        let counts = (
            scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE source = 'human' AND intent = 'order_food'").await,
            store.suspect_count().await.unwrap(),
        );
        store.close().await;
        counts
    });
    assert_eq!((confirmed, suspects), (1, 0));
    tmux.key("q");
    tmux.wait_for("EXIT=0");
}

/// A sample with `text` waiting for review, as daily capture leaves one.
fn waiting_sample(text: &str, language: &str) -> NewSample {
    NewSample {
        text: text.into(),
        normalized_text: flywheel::text::normalize_for_dedup(text),
        intent: "greeting".into(),
        language: Some(language.into()),
        source: flywheel::domain::Provenance::Auto,
        confidence: Some(0.42),
        review_status: flywheel::domain::ReviewStatus::NeedsReview,
        priority: 2,
        occurrences: 1,
        predicted_intent: Some("greeting".into()),
        predicted_by_version: Some("router-v1.0.0".into()),
        conversation_id: None,
    }
}

/// Type the console's command line into the shell of `tmux`, with `args`
/// after `tui`, and wait for its tab bar.
fn open_console(tmux: &Tmux, db: &TestDb, args: &str) {
    let home = db.data_path();
    tmux.type_line(&format!(
        "cd {} && {} {} --data-dir {home} tui {args}; echo EXIT=$?",
        shell_quoted(home),
        env_prefix(home),
        shell_quoted(&flywheel_bin()),
        home = shell_quoted(home),
    ));
    tmux.wait_for("1 Capture");
}

/// Every line of `screen` that shows `text` is as wide as the terminal and
/// ends in the pane's border: nothing was dropped or shifted.
fn assert_in_columns(screen: &str, text: &str, width: usize) {
    use unicode_width::UnicodeWidthStr;
    let lines: Vec<&str> = screen.lines().filter(|l| l.contains(text)).collect();
    assert!(!lines.is_empty(), "{text} is not on the screen:\n{screen}");
    for line in lines {
        assert_eq!(line.width(), width, "{line:?} in\n{screen}");
        assert!(line.ends_with('│'), "{line:?} in\n{screen}");
    }
}

/// Devanagari conjuncts with vowel signs (`म्हा` covers three columns)
/// arrive whole, in their columns, in the Review pane's list and detail.
#[test]
fn console_in_tmux_draws_devanagari_whole_and_in_its_columns() {
    if skip_without_tmux() {
        return;
    }
    let db = TestDb::sqlite();
    let hindi = "तुम्हारा नाम क्या है";
    let tamil = "உங்கள் பெயர் என்ன";
    db.with_store(move |store| async move {
        store
            .upsert_samples(&[waiting_sample(hindi, "hi"), waiting_sample(tamil, "ta")])
            .await
            .unwrap();
    });
    let tmux = Tmux::start(100, 30);
    open_console(&tmux, &db, "");
    tmux.key("2");
    tmux.wait_for("review queue · 2 waiting");
    // The detail of the selected sample is drawn with the list.
    let screen = tmux.wait_for("1 of 2");
    assert!(!screen.contains("तुम्ह रा"), "{screen}");
    assert_in_columns(&screen, hindi, 100);
    assert_in_columns(&screen, tamil, 100);
    // `/` filters the queue as it is typed (Devanagari typed too), with
    // the match count; Enter keeps it, Esc clears it.
    tmux.key("/");
    tmux.run(&["send-keys", "-t", "main", "-l", "नाम"]);
    tmux.wait_for("/नाम_ · 1 of 2 match · Enter keeps · Esc clears");
    tmux.key("Enter");
    let screen = tmux.wait_for("filter “नाम”: 1 of 2");
    assert!(!screen.contains(tamil), "{screen}");
    tmux.key("/");
    tmux.key("Escape");
    tmux.wait_for(tamil);
    tmux.key("q");
    tmux.wait_for("EXIT=0");
}

/// `--read-only`: the header says so, a writing key is refused with its
/// reason and the sample stays queued; `y` copies the sample's id through
/// OSC 52, which tmux (`set-clipboard on`) takes into its paste buffer.
#[test]
fn console_in_tmux_read_only_refuses_writes_and_y_copies_through_osc_52() {
    if skip_without_tmux() {
        return;
    }
    let db = TestDb::sqlite();
    let text = "तुम्हारा नाम क्या है";
    db.with_store(move |store| async move {
        store
            .upsert_samples(&[waiting_sample(text, "hi")])
            .await
            .unwrap();
    });
    let tmux = Tmux::start(100, 30);
    tmux.run(&["set-option", "-g", "set-clipboard", "on"]);
    open_console(&tmux, &db, "--read-only");
    tmux.wait_for("READ-ONLY");
    tmux.key("2");
    tmux.wait_for("1 of 1");
    tmux.key("a");
    tmux.wait_for("read-only console: “accept the prediction” writes, so it is refused");
    let id = db.with_store(|store| async move {
        scalar(
            &store,
            "SELECT id FROM training_samples WHERE review_status = 'needs-review'",
        )
        .await
    });
    tmux.key("y");
    tmux.wait_for(&format!("copied sample id {id} to the clipboard (OSC 52)"));
    tmux.wait_for_buffer(&id.to_string());
    // `Y`: the text, Devanagari intact.
    tmux.key("Y");
    tmux.wait_for(&format!("copied the text of sample {id}"));
    tmux.wait_for_buffer(text);
    tmux.key("q");
    tmux.wait_for("EXIT=0");
}

/// Escape closes the stage menu; `q` inside it quits the console.
#[test]
fn console_in_tmux_q_quits_from_the_stage_menu() {
    if skip_without_tmux() {
        return;
    }
    let db = TestDb::sqlite();
    // An installation (migrated), with nothing in it.
    db.with_store(|_| async {});
    let tmux = Tmux::start(100, 30);
    open_console(&tmux, &db, "");
    tmux.key("5");
    tmux.wait_for("stage runs");
    tmux.key("m");
    tmux.wait_for("run a stage · Enter · Esc");
    tmux.key("Escape");
    tmux.wait_for_absent("run a stage · Enter · Esc");
    tmux.key("m");
    tmux.wait_for("run a stage · Enter · Esc");
    tmux.key("q");
    tmux.wait_for("EXIT=0");
}

#[test]
fn without_a_terminal_the_console_refuses_and_bare_flywheel_prints_help() {
    let db = TestDb::sqlite();
    db.cmd()
        .arg("tui")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("needs a terminal"));
    db.cmd()
        .assert()
        .code(2)
        .stdout(predicates::str::contains("Usage: flywheel"));
}
