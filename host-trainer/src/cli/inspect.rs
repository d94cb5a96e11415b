//! `microdiff inspect`: what a blob holds, for people (`--json` for tools).

use std::path::PathBuf;

use microdiff_runtime::Model;
use serde_json::json;

use super::{CliError, msg};

/// `microdiff inspect` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blob.
    blob: PathBuf,
    /// Print JSON instead of text (with every program's instructions and coefficients).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let bytes =
        microdiff_trainer::files::read_limited(&a.blob, microdiff_trainer::files::MAX_BLOB_BYTES)
            .map_err(CliError::io(&a.blob))?;
    let model = Model::parse(&bytes).map_err(msg(&a.blob.display().to_string()))?;
    let m = model.meta();
    let shape = &m.shape[..m.rank as usize];
    let tensors: Vec<_> = (0..model.tensors().count())
        .filter_map(|i| model.tensors().get(i).ok().map(|t| (i, t)))
        .map(|(i, t)| json!({"index": i, "dtype": t.dtype.name(), "rows": t.rows, "cols": t.cols, "bytes": t.data.len() + t.scales.len()}))
        .collect();
    let programs: Vec<_> = model
        .programs()
        .iter()
        .flatten()
        .map(|p| {
            let code = microdiff_trainer::sampler::instructions_json(&p).map_err(msg(p.name()))?;
            Ok(json!({"name": p.name(), "registers": p.regs, "steps": p.steps, "evaluations": p.evals, "code_bytes": p.code.len(), "instructions": code}))
        })
        .collect::<Result<_, CliError>>()?;
    let plan = model.plan();
    let doc = json!({
        "file": a.blob.display().to_string(),
        "bytes": bytes.len(),
        "version": microdiff_runtime::blob::VERSION,
        "objective": m.objective.name(),
        "prediction": m.prediction.name(),
        "shape": shape,
        "classes": m.classes,
        "null_class": m.null_class,
        "schedule_rows": model.schedule().len(),
        "graph_ops": model.graph().op_count(),
        "tensors": tensors,
        "programs": programs,
        "arena": {"bytes": model.arena_bytes(), "registers": plan.regs, "network_slots": plan.network_slots, "live_set_bound_slots": plan.live_bound_slots},
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(msg("json"))?
        );
        return Ok(());
    }
    println!(
        "{}: microdiff blob v{}, {} bytes",
        a.blob.display(),
        microdiff_runtime::blob::VERSION,
        bytes.len()
    );
    println!(
        "  model      {} network predicting {}, samples of shape {:?}",
        m.objective.name(),
        m.prediction.name(),
        shape
    );
    match m.null_class {
        Some(n) => println!("  classes    {} (null class {n} for guidance)", m.classes),
        None if m.classes > 0 => println!("  classes    {}", m.classes),
        None => println!("  classes    unconditional"),
    }
    println!(
        "  graph      {} ops, {} schedule rows",
        model.graph().op_count(),
        model.schedule().len()
    );
    println!("  tensors    {}", tensors.len());
    for t in &tensors {
        println!(
            "    #{:<3} {:<4} {:>5} x {:<5} {:>8} bytes",
            t["index"],
            t["dtype"].as_str().unwrap_or(""),
            t["rows"],
            t["cols"],
            t["bytes"]
        );
    }
    println!("  programs");
    for p in &programs {
        println!(
            "    {:<16} {:>4} steps {:>5} evaluations {:>2} registers",
            p["name"].as_str().unwrap_or(""),
            p["steps"],
            p["evaluations"],
            p["registers"]
        );
    }
    println!(
        "  arena      {} bytes ({} registers x {} + {} network slots; live-set bound {})",
        model.arena_bytes(),
        plan.regs,
        plan.data_len,
        plan.network_slots,
        plan.live_bound_slots
    );
    Ok(())
}
