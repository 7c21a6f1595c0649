//! `flywheel metrics`: the loop's gauges once, in the Prometheus text
//! format, for hosts that run the stages from cron without `serve`
//! (node-exporter's textfile collector reads the file `--output` writes).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Context;
use crate::error::{Error, Result};
use crate::monitor::exposition;
use crate::monitor::loop_metrics::LoopMetrics;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write the text to FILE (through FILE.tmp and a rename, so a
    /// collector never reads half of it) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub async fn metrics(ctx: &Context, args: MetricsArgs) -> Result<ExitCode> {
    let store = ctx.existing_store().await?;
    let read = LoopMetrics::read(&store, ctx.config()).await;
    store.close().await;
    let mut text = String::with_capacity(4096);
    read?.render(&mut text);
    if let Some(path) = &args.output {
        write_atomically(path, &text)?;
        ctx.out.summary(
            &json!({ "ok": true, "output": path, "bytes": text.len() }),
            || format!("wrote {} ({} bytes)", path.display(), text.len()),
        );
    } else if ctx.out.json {
        let parsed = exposition::parse(&text).map_err(Error::failure)?;
        let samples: Vec<_> = parsed
            .samples
            .iter()
            .map(|s| json!({ "name": s.name, "labels": s.labels, "value": s.value }))
            .collect();
        ctx.out
            .summary(&json!({ "ok": true, "samples": samples }), String::new);
    } else {
        // The text is the command's data: printed even with -q.
        super::output::print_line(text.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn write_atomically(path: &std::path::Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            Error::failure(format!("cannot write {}: {err}", path.display()))
        })
}
