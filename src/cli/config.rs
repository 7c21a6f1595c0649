//! `flywheel config show`: the merged configuration and where each value
//! came from, secrets masked.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::Context;
use crate::error::Result;

pub fn config_show(ctx: &Context) -> Result<ExitCode> {
    let loaded = &ctx.loaded;
    let origins: std::collections::BTreeMap<&String, String> = loaded
        .origins
        .iter()
        .map(|(k, o)| (k, o.to_string()))
        .collect();
    ctx.out.summary(
        &serde_json::json!({ "config": loaded.config, "origins": origins, "config_file": loaded.config_file }),
        || {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "# config file: {}",
                loaded
                    .config_file
                    .as_ref()
                    .map_or_else(|| "none".into(), |p| p.display().to_string())
            );
            for (key, origin) in &origins {
                let _ = writeln!(out, "# {key} from {origin}");
            }
            out.push_str(&loaded.to_masked_toml());
            out
        },
    );
    Ok(ExitCode::SUCCESS)
}
