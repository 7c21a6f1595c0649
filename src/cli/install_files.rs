//! `flywheel completions SHELL` and `flywheel man [--dir DIR]`: the files an
//! install puts on a host, generated from the clap definitions so they never
//! fall behind the commands. Neither reads the configuration or a database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, ValueEnum};
use serde::Serialize;

use super::Cli;
use super::output::{Output, print_line};
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for; the script goes to stdout.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand (flywheel.1,
    /// flywheel-daily-capture.1, …) into DIR instead of printing
    /// flywheel(1) on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "flywheel", &mut script);
    print_line(String::from_utf8_lossy(&script).trim_end());
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: &ManArgs, out: &Output) -> Result<ExitCode> {
    let Some(dir) = &args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .map_err(|err| Error::failure(format!("rendering the man page: {err}")))?;
        print_line(String::from_utf8_lossy(&page).trim_end());
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).map_err(|err| {
        Error::failure(format!(
            "cannot create the man page directory {}: {err}",
            dir.display()
        ))
    })?;
    let pages = write_man_pages(dir)?;
    #[derive(Serialize)]
    struct Summary<'a> {
        ok: bool,
        dir: &'a Path,
        pages: &'a [PathBuf],
    }
    out.summary(
        &Summary {
            ok: true,
            dir,
            pages: &pages,
        },
        || format!("{} man pages written to {}", pages.len(), dir.display()),
    );
    Ok(ExitCode::SUCCESS)
}

/// One page per command: the top one and every subcommand at every depth,
/// named as `man` looks them up (`man flywheel-models-promote`).
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    fn write(command: clap::Command, dir: &Path, pages: &mut Vec<PathBuf>) -> Result<()> {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub.clone(), dir, pages)?;
        }
        let path = clap_mangen::Man::new(command)
            .generate_to(dir)
            .map_err(|err| {
                Error::failure(format!("writing a man page into {}: {err}", dir.display()))
            })?;
        pages.push(path);
        Ok(())
    }
    let mut command = Cli::command().disable_help_subcommand(true);
    // names the subcommands `flywheel-models-promote`, as clap_mangen expects
    command.build();
    let mut pages = Vec::new();
    write(command, dir, &mut pages)?;
    pages.sort();
    Ok(pages)
}
