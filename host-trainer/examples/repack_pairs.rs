//! Rewrites a W8A8 blob exported before 2026-12-05 (tiled `QLINEAR` weights) into the paired
//! layout the exporter writes now: same samples bit for bit, fewer instructions per
//! multiply-accumulate on a Cortex-M (docs/integer.md §5). Old blobs still run as they are,
//! through the portable reference kernel.
//!
//! ```sh
//! cargo run --release -p microdiff-trainer --example repack_pairs -- OLD.mdfb NEW.mdfb
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(dst), None) = (args.next(), args.next(), args.next()) else {
        return Err("usage: repack_pairs OLD.mdfb NEW.mdfb".into());
    };
    let old = std::fs::read(&src).map_err(|e| format!("{src}: {e}"))?;
    let new =
        microdiff_trainer::export::w8a8::repack_pairs(&old).map_err(|e| format!("{src}: {e}"))?;
    std::fs::write(&dst, &new).map_err(|e| format!("{dst}: {e}"))?;
    eprintln!("repack_pairs: wrote {dst} ({} bytes)", new.len());
    Ok(())
}
