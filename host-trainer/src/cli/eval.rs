//! `microdiff eval`: sample quality of a blob's program against data, each metric next to its
//! noise floor, and with `--run` the likelihood of held-out data under the run's model. The
//! measurements are the library's ([`microdiff_trainer::eval::report`]); this prints them.

use std::path::PathBuf;

use microdiff_runtime::Model;
use microdiff_trainer::data::Source;
use microdiff_trainer::eval::nll::NllConfig;
use microdiff_trainer::eval::report::{self, Request};
use microdiff_trainer::run::RunDir;
use microdiff_trainer::sampling;
use microdiff_trainer::zoo::boltzmann::run::RbmRun;
use microdiff_trainer::zoo::vae::hvae_run::HvaeRun;
use microdiff_trainer::zoo::vae::run::VaeRun;
use serde_json::json;

use super::{CliError, msg};

/// `microdiff eval` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blob.
    blob: PathBuf,
    /// Reference data: a built-in 2-D set (moons, 8gaussians, swissroll, checkerboard, rings),
    /// `digits`, or your own CSV / NPY file or PNG folder (any dimension: the samples are
    /// compared with two random halves of it, and the halves with each other for the floor).
    #[arg(long)]
    data: String,
    /// Program name [default: the blob's first program].
    #[arg(long)]
    program: Option<String>,
    /// Samples (2-D and your data) or samples per class (digits).
    #[arg(long, short, default_value_t = 2000)]
    n: usize,
    /// Noise seed of the samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The training run the blob came from: adds the negative log-likelihood of held-out data
    /// under its model (EMA weights) through the probability-flow ODE; for a VAE or two-level
    /// VAE run (`train --objective vae | hvae`), by the importance-weighted bound with k = 64;
    /// for an RBM run (`--objective rbm`), of the held-out data binarised as its training set
    /// was, by annealed importance sampling of log Z (10 000 intermediate distributions, 100
    /// runs; its standard error is in the figure's).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Held-out points for the likelihood (2-D sets: fresh draws; your data: its first rows;
    /// digits use their whole test split).
    #[arg(long, default_value_t = 1000)]
    nll_n: usize,
    /// Runge–Kutta steps of the likelihood's ODE (4 network evaluations each).
    #[arg(long, default_value_t = 50)]
    nll_steps: usize,
    /// Divergence trace: `exact` (one backward pass per dimension), `hutchinson[:K]` (K random
    /// probes, unbiased) or `auto` (exact up to 8 dimensions).
    #[arg(long, default_value = "auto")]
    trace: String,
}

pub fn run(a: Args) -> Result<(), CliError> {
    if a.n < 2 {
        return Err(CliError::Msg(format!(
            "-n {}: the distances compare two point sets of at least 2 samples each",
            a.n
        )));
    }
    if a.run.is_some() && a.nll_n == 0 {
        return Err(CliError::Msg(
            "--nll-n 0: the likelihood needs at least one held-out point".into(),
        ));
    }
    let (bytes, program) = sampling::open(&a.blob, a.program.as_deref())?;
    let model = Model::parse(&bytes).map_err(msg(&a.blob.display().to_string()))?;
    let evals = model
        .program(&program)
        .map_err(msg(&format!("program {program:?}")))?
        .evals;
    let source = Source::parse(&a.data).map_err(|e| CliError::Msg(format!("--data {e}")))?;
    let total = if source == Source::Digits {
        a.n.saturating_mul(10)
    } else {
        a.n
    };
    let bar = super::sample_progress(total, usize::from(evals.max(1)))?;
    let request = Request {
        blob: &bytes,
        program: &program,
        data: &source,
        n: a.n,
        seed: a.seed,
    };
    let evaluation = report::evaluate(&request, &|k| bar.set_position(k as u64))?;
    bar.finish_and_clear();
    if let Some(far) = &evaluation.far_out {
        super::warn_far_out(far, "the samples");
    }
    let mut metrics = serde_json::to_value(&evaluation.report).map_err(msg("json"))?;
    if let Some(run) = a.run.as_ref().filter(|r| VaeRun::exists(r)) {
        let vae = VaeRun::load(run).map_err(msg("--run"))?;
        let nll = report::vae_likelihood(&vae, &source, a.nll_n, a.seed)?;
        metrics["nll"] = serde_json::to_value(&nll).map_err(msg("json"))?;
    } else if let Some(run) = a.run.as_ref().filter(|r| HvaeRun::exists(r)) {
        let hvae = HvaeRun::load(run).map_err(msg("--run"))?;
        let nll = report::hvae_likelihood(&hvae, &source, a.nll_n, a.seed)?;
        metrics["nll"] = serde_json::to_value(&nll).map_err(msg("json"))?;
    } else if let Some(run) = a.run.as_ref().filter(|r| RbmRun::exists(r)) {
        let rbm = RbmRun::load(run).map_err(msg("--run"))?;
        if !super::is_terminal() {
            eprintln!(
                "microdiff: the likelihood of held-out data under {} (AIS)",
                run.display()
            );
        }
        let nll = report::rbm_likelihood(&rbm, &source, a.nll_n, a.seed)?;
        metrics["nll"] = serde_json::to_value(&nll).map_err(msg("json"))?;
    } else if let Some(run) = &a.run {
        let trained = RunDir::locate(run)?.open()?;
        let config = NllConfig {
            steps: a.nll_steps,
            trace: report::parse_trace(&a.trace, trained.config().model.data_dim)?,
            seed: a.seed,
        };
        if !super::is_terminal() {
            eprintln!(
                "microdiff: the likelihood of held-out data under {}",
                run.display()
            );
        }
        let nll = report::likelihood(&trained, &source, a.nll_n, config)?;
        metrics["nll"] = serde_json::to_value(&nll).map_err(msg("json"))?;
    }
    let mut doc = json!({"blob": a.blob.display().to_string(), "program": program, "evaluations": evals, "data": a.data, "metrics": metrics});
    if let Some(far) = &evaluation.far_out {
        // For tools: the warning printed above, as data.
        doc["far_out"] = json!({"values": far.values, "of": far.of, "max_data_stds": far.max});
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(msg("json"))?
        );
        return Ok(());
    }
    println!(
        "{} / {program} ({evals} network evaluations) vs {}:",
        a.blob.display(),
        a.data
    );
    if let Some(m) = doc["metrics"].as_object() {
        for (k, v) in m {
            match v {
                serde_json::Value::Object(o) if k == "nll" => {
                    let how = match o["ode_steps"].as_u64() {
                        Some(0) | None => o["estimator"].as_str().unwrap_or("?").to_string(),
                        Some(steps) => format!(
                            "{}, {} trace, {steps} RK4 steps",
                            o["estimator"].as_str().unwrap_or("?"),
                            o["trace"].as_str().unwrap_or("?")
                        ),
                    };
                    println!(
                        "  {k:<26} {:>12.5}   ± {:.5} nats/sample (model space); {:.4} bits/dim in {} ({} points, {how})",
                        o["value"].as_f64().unwrap_or(f64::NAN),
                        o["stderr"].as_f64().unwrap_or(f64::NAN),
                        o["bits_per_dim"].as_f64().unwrap_or(f64::NAN),
                        o["representation"].as_str().unwrap_or("data units"),
                        o["points"],
                    )
                }
                serde_json::Value::Object(o) => println!(
                    "  {k:<26} {:>12.5}   noise floor {:>10.5}",
                    o.get("value").and_then(|v| v.as_f64()).unwrap_or(f64::NAN),
                    o.get("noise_floor")
                        .and_then(|v| v.as_f64())
                        .unwrap_or(f64::NAN)
                ),
                other => println!("  {k:<26} {other}"),
            }
        }
    }
    Ok(())
}
