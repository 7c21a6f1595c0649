//! The command-line face: parses arguments, loads the configuration, sets up
//! logging, runs one command on a tokio runtime and maps its error to a
//! sysexits code. Commands are thin: the work lives in the library.

mod args;
mod backup;
mod canary_check;
mod config;
mod console;
mod daily_capture;
mod demo;
mod doctor;
mod export;
mod ingest;
mod install_files;
mod job_history;
mod label_studio_sync;
mod metrics;
mod migrate;
mod models;
pub mod output;
mod progress_display;
mod prune;
pub mod router;
mod samples;
mod serve;
mod simulate;
mod stats;
mod stats_suspects;
mod status;
mod weekly_training;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LoadOptions, LoadedConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::jobs::{self, Launch, StageJob, Trigger};
use crate::storage::{self, Store};
use output::Output;

/// What `flywheel --version` prints after the name: the release, the commit
/// it was built from ("unknown" without git) and the newest schema migration
/// it carries (build.rs finds both).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FLYWHEEL_GIT_COMMIT"),
    ", schema ",
    env!("FLYWHEEL_SCHEMA_VERSION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "flywheel",
    version = VERSION,
    about = "Keeps an NLU intent router learning from production: capture, review, train, deploy.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command takes (DESIGN §5).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// `postgres://…` or `sqlite://…`; default: the embedded SQLite file in the data dir.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Data directory (SQLite file, models, logs); default: the user data dir.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file to read instead of the one in the config directory.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object summarising the run on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log detail on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr, no human summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Who started this run; recorded in job_runs (crontab.conf passes `cron`).
    #[arg(long, global = true, value_enum, default_value_t = TriggerArg::Cli)]
    pub trigger: TriggerArg,
}

/// `--trigger`: the CLI's spelling of [`Trigger`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TriggerArg {
    Cli,
    Cron,
    Tui,
}

impl From<TriggerArg> for Trigger {
    fn from(arg: TriggerArg) -> Self {
        match arg {
            TriggerArg::Cli => Trigger::Cli,
            TriggerArg::Cron => Trigger::Cron,
            TriggerArg::Tui => Trigger::Tui,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema.
    Migrate,
    /// Queue size, approved unused samples, today's counts, live models, last runs.
    Status,
    /// Check the installation (database, directories, Label Studio, the NLU service, cron) and the loop's health; print fixes.
    Doctor(doctor::DoctorArgs),
    /// Show the merged configuration (secrets masked).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Model versions: list, history, promote, rollback, archive.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Stage-run history (job_runs): when each stage ran, how long, what it counted or why it failed.
    Jobs(job_history::JobsArgs),
    /// The loop's gauges once in the Prometheus text format (for node-exporter's textfile collector on cron hosts).
    Metrics(metrics::MetricsArgs),
    /// Queue, daily counts, per-version performance.
    #[command(subcommand)]
    Stats(stats::StatsCommand),
    /// Auto-filter the window's pending conversations into samples and the review queue; write the daily report.
    DailyCapture(daily_capture::DailyCaptureArgs),
    /// Approved samples to JSONL for training, with the stable test split.
    Export(export::ExportArgs),
    /// Manage training samples.
    #[command(subcommand)]
    Samples(samples::SamplesCommand),
    /// Push the review queue to Label Studio and pull finished annotations back.
    LabelStudioSync(label_studio_sync::SyncArgs),
    /// Train a router model from a JSONL file.
    Train(router::TrainArgs),
    /// Score a model on a labelled JSONL file.
    Eval(router::EvalArgs),
    /// Classify one text or a JSONL file, one JSON line per input.
    Classify(router::ClassifyArgs),
    /// Train the next version when enough approved samples wait; compare with production.
    WeeklyTraining(weekly_training::WeeklyTrainingArgs),
    /// Classify and log live utterances over HTTP (DESIGN §6).
    Serve(serve::ServeArgs),
    /// Backfill conversation records from JSONL (all or nothing by default).
    Ingest(ingest::IngestArgs),
    /// Synthetic users talking to a running `serve` (language mix, repeats, bursts, --gap).
    Simulate(simulate::SimulateArgs),
    /// The operator console (what `flywheel` alone opens on a terminal).
    Tui(console::TuiArgs),
    /// Everything alive in a minute: bootstrap model, serve, synthetic users, daily capture, the console.
    Demo(demo::DemoArgs),
    /// Compare the canary with production; wait, advance its traffic, promote or roll back.
    CanaryCheck(canary_check::CanaryCheckArgs),
    /// Delete conversation logs older than a retention period (samples and models are kept).
    Prune(prune::PruneArgs),
    /// Copy the embedded SQLite database to FILE while it is in use.
    Backup(backup::BackupArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(install_files::CompletionsArgs),
    /// Print the man page, or write one page per subcommand with --dir.
    Man(install_files::ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged configuration and where each value came from.
    Show,
}

/// What every command gets: the configuration, how to print, who triggered it.
pub struct Context {
    pub loaded: LoadedConfig,
    pub out: Output,
    pub trigger: Trigger,
}

impl Context {
    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// Open the database (creating an embedded one) and apply migrations.
    pub async fn store(&self) -> Result<Store> {
        storage::open(self.config()).await
    }

    /// For commands that only read: the database must already exist.
    pub async fn existing_store(&self) -> Result<Store> {
        storage::open_existing(self.config()).await
    }

    /// Run a stage as every command does: open the store, show the stage's
    /// progress, run it through the job framework (locked and recorded),
    /// close the store.
    pub async fn run_stage<S: StageJob>(&self, stage: S) -> Result<S::Outcome> {
        let store = self.store().await?;
        let display = self.out.progress();
        let launch =
            Launch::new(&store, self.config(), self.trigger).with_reporter(display.reporter());
        let result = jobs::run(stage, &launch).await;
        display.finish();
        store.close().await;
        result
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let out = Output::new(cli.global.json, cli.global.quiet);
    if let Some(result) = without_config(cli.command.as_ref(), &out) {
        return match result {
            Ok(_) if output::stdout_closed() => ExitCode::from(ErrorKind::OutputClosed.exit_code()),
            Ok(code) => code,
            Err(err) => report_error(&out, &err),
        };
    }
    let options = LoadOptions {
        config_file: cli.global.config.clone(),
        database_url: cli.global.database_url.clone(),
        data_dir: cli.global.data_dir.clone(),
        ..LoadOptions::from_process()
    };
    let mut loaded = match Config::load(&options) {
        Ok(loaded) => loaded,
        Err(err) => return report_error(&out, &err),
    };
    if matches!(cli.command, Some(Command::Demo(_))) {
        // The demo never touches the operator's real data or database.
        loaded.config = crate::demo::demo_config(&loaded.config);
    }
    let verbosity = if cli.global.quiet {
        -1
    } else {
        cli.global.verbose.min(3) as i8
    };
    // The console draws on the terminal: log lines on stderr would
    // scribble over it, so it logs to the file only.
    let console = console::opens_console(cli.command.as_ref())
        || matches!(&cli.command, Some(Command::Demo(args)) if !args.headless);
    let stderr = if console {
        crate::logging::Stderr::Off
    } else if matches!(&cli.command, Some(Command::Demo(_))) {
        // Its summary is the output; the stages' INFO lines are for `-v`.
        crate::logging::Stderr::Summary
    } else {
        crate::logging::Stderr::Log
    };
    // Inspection commands never create a data dir (a typo in --data-dir
    // must not make an empty installation): they log to a file only where
    // one already exists.
    let file_logging = !matches!(cli.command, Some(Command::Config(_) | Command::Doctor(_)))
        && (!reads_only(cli.command.as_ref()) || loaded.config.data_dir.is_dir());
    let logs_dir = loaded.config.logs_dir();
    let _log_guard = crate::logging::init(
        file_logging.then_some(logs_dir.as_path()),
        verbosity,
        stderr,
    );

    // `doctor` fails on these; every other command says so once.
    for (path, mode) in loaded.readable_secret_files() {
        tracing::warn!(
            "{} holds a secret and other users can read it (mode {mode:o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return report_error(
                &out,
                &Error::failure(format!("cannot start the runtime: {err}")),
            );
        }
    };
    let ctx = Context {
        loaded,
        out,
        trigger: cli.global.trigger.into(),
    };
    match runtime.block_on(dispatch(cli.command, &ctx)) {
        // The reader of stdout went away: end quietly (README, Commands).
        Ok(_) if output::stdout_closed() => ExitCode::from(ErrorKind::OutputClosed.exit_code()),
        Ok(code) => code,
        Err(err) => report_error(&out, &err),
    }
}

/// Commands that describe the binary itself: they run before the
/// configuration loads, so a broken config never blocks an install step.
fn without_config(command: Option<&Command>, out: &Output) -> Option<Result<ExitCode>> {
    match command? {
        Command::Completions(args) => Some(install_files::completions(args)),
        Command::Man(args) => Some(install_files::man(args, out)),
        _ => None,
    }
}

/// Commands that only read: they never create a data dir or database.
fn reads_only(command: Option<&Command>) -> bool {
    matches!(
        command,
        None | Some(
            Command::Status
                | Command::Doctor(_)
                | Command::Config(_)
                | Command::Stats(_)
                | Command::Jobs(_)
                | Command::Metrics(_)
                | Command::Models(_)
                | Command::Tui(_)
                | Command::Backup(_)
        )
    )
}

async fn dispatch(command: Option<Command>, ctx: &Context) -> Result<ExitCode> {
    let Some(command) = command else {
        if console::opens_console(None) {
            return console::run(ctx, console::TuiArgs::default()).await;
        }
        if ctx.out.json {
            return Err(Error::usage(
                "no command given; `flywheel --help` lists the commands",
            ));
        }
        // No terminal (cron, a pipe): show the map, exit as a usage error.
        use clap::CommandFactory;
        Cli::command().print_help().ok();
        return Ok(ExitCode::from(2));
    };
    match command {
        Command::Migrate => migrate::migrate(ctx).await,
        Command::Status => status::status(ctx).await,
        Command::Doctor(args) => doctor::doctor(ctx, args).await,
        Command::Config(ConfigCommand::Show) => config::config_show(ctx),
        Command::Models(command) => models::run(ctx, command).await,
        Command::Stats(command) => stats::run(ctx, command).await,
        Command::Jobs(args) => job_history::jobs(ctx, args).await,
        Command::Metrics(args) => metrics::metrics(ctx, args).await,
        Command::DailyCapture(args) => daily_capture::daily_capture(ctx, args).await,
        Command::Samples(command) => samples::samples(ctx, command).await,
        Command::LabelStudioSync(args) => label_studio_sync::label_studio_sync(ctx, &args).await,
        Command::WeeklyTraining(args) => weekly_training::weekly_training(ctx, &args).await,
        // CPU-bound and database-free: run on this thread, outside the reactor's workers.
        Command::Train(args) => tokio::task::block_in_place(|| router::train(&args, &ctx.out))
            .map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => tokio::task::block_in_place(|| router::eval(&args, &ctx.out))
            .map(|()| ExitCode::SUCCESS),
        Command::Classify(args) => {
            tokio::task::block_in_place(|| router::classify(&args, &ctx.out))
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Export(args) => export::export(ctx, args).await,
        Command::Serve(args) => serve::serve(ctx, args).await,
        Command::Ingest(args) => ingest::ingest(ctx, args).await,
        Command::Simulate(args) => simulate::simulate(ctx, args).await,
        Command::Tui(args) => console::run(ctx, args).await,
        Command::Demo(args) => demo::demo(ctx, args).await,
        Command::CanaryCheck(args) => canary_check::canary_check(ctx, args).await,
        Command::Prune(args) => prune::prune(ctx, args).await,
        Command::Backup(args) => backup::backup(ctx, args).await,
        Command::Completions(_) | Command::Man(_) => {
            without_config(Some(&command), &ctx.out).expect("describes the binary")
        }
    }
}

/// clap's refusal of the command line, as [`report_error`] reports every
/// other error: its text on stderr and, with `--json` anywhere before `--`,
/// the JSON error object on stdout; exit 2. Help and version print as usual.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    let json = std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json");
    if !json || matches!(err.kind(), Clap::DisplayHelp | Clap::DisplayVersion) {
        err.exit();
    }
    let text = err.render().to_string();
    let message = if err.kind() == Clap::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap's text is the command's help: say what is missing instead
        let message = "a subcommand is required; `--help` lists them";
        eprintln!("error: {message}");
        message
    } else {
        let _ = err.print();
        // the error and its hints, without the usage line and help pointer
        // that follow the first blank line
        let text = text.trim().trim_start_matches("error:").trim();
        text.split("\n\n").next().unwrap_or(text)
    };
    report_json_error(message, ErrorKind::Usage.exit_code())
}

/// One clear sentence on stderr (and a JSON object with `--json`), and the
/// exit code of the error's kind.
fn report_error(out: &Output, err: &Error) -> ExitCode {
    let code = err.kind().exit_code();
    if err.kind() == ErrorKind::OutputClosed {
        // Nobody reads stdout any more: nothing to say (`export | head -1`).
        return ExitCode::from(code);
    }
    eprintln!("error: {err}");
    if out.json {
        return report_json_error(err.message(), code);
    }
    ExitCode::from(code)
}

/// The JSON object every failed `--json` run prints on stdout.
fn report_json_error(message: &str, code: u8) -> ExitCode {
    let value = serde_json::json!({ "ok": false, "error": message, "exit_code": code });
    output::print_line(&value.to_string());
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn the_version_names_the_schema_the_binary_migrates_to() {
        let schema = crate::storage::newest_schema_version();
        assert!(schema > 0, "no migration compiled in");
        assert!(
            super::VERSION.ends_with(&format!(", schema {schema})")),
            "build.rs counted another schema version than the migrator: {}",
            super::VERSION
        );
    }
}
