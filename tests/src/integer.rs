//! A tiny full-integer (W8A8) network that uses every integer op — `QUANTIZE` with a per-time
//! scale, `QLINEAR`, `QGATHER` by time and by class, `QADD`, `QLAYER_NORM`, `QLUT`,
//! `DEQUANTIZE` — with seeded valid parameters: the seed of the robustness test and the fuzz
//! target for the integer sections, and the model of the integer graph tests.

use microdiff_kernels::int8::{self, WeightLayout, pad4, tile_index};
use microdiff_runtime::blob::graph::GatherKey;
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder, Value};

use crate::mlp::SplitMix;

/// Data elements of the tiny network.
pub const DATA: usize = 4;
/// Its width.
pub const HIDDEN: usize = 8;
/// Its classes (the null class is `CLASSES`).
pub const CLASSES: u16 = 3;

/// The programs: `a` evaluates times 4.0 and 2.5 (guided), `b` times 1.5 and 0.5.
pub fn programs() -> Vec<ProgramBuilder> {
    [("a", [4.0f32, 2.5]), ("b", [1.5, 0.5])]
        .into_iter()
        .map(|(name, ts)| {
            let mut p = ProgramBuilder::new(name, 2);
            p.lin(0, &[], Some(1.0)).step();
            for t in ts {
                p.eval(1, 0, ClassSel::Caller, t);
                p.eval(0, 1, ClassSel::Null, t);
                p.lin(0, &[(0, 0.5), (1, 0.5)], Some(0.1)).step();
            }
            p
        })
        .collect()
}

/// Every time the programs evaluate, in increasing bit order.
pub const TIMES: [f32; 4] = [0.5, 1.5, 2.5, 4.0];

fn codes(rng: &mut SplitMix, n: usize) -> Vec<i8> {
    (0..n).map(|_| (rng.next_u64() % 255) as i8).collect()
}

/// A `QLINEAR` of `rows × cols` with seeded weights (symmetric codes, `−127..=127`, as the
/// exporter writes them) in `layout` and valid row records.
fn qlinear(
    b: &mut BlobBuilder,
    rng: &mut SplitMix,
    x: Value,
    (rows, cols): (usize, usize),
    layout: WeightLayout,
) -> Value {
    let w: Vec<i8> = codes(rng, rows * cols)
        .into_iter()
        .map(|c| c.max(-127))
        .collect();
    let cp = pad4(cols).unwrap_or(0);
    let mut tiled = vec![0i8; pad4(rows).unwrap_or(0) * cp];
    match layout {
        WeightLayout::Tiles => {
            for r in 0..rows {
                for c in 0..cols {
                    tiled[tile_index(r, c, cp)] = w[r * cols + c];
                }
            }
        }
        WeightLayout::Pairs => {
            let mut packed = vec![0u8; tiled.len()];
            if int8::pack_pairs(&w, rows, cols, &mut packed).is_ok() {
                tiled = packed.iter().map(|&v| v as i8).collect();
            }
        }
    }
    let mut params = Vec::new();
    for _ in 0..rows {
        let rq = int8::quantize_multiplier(0.002 + (rng.next_u64() % 100) as f64 * 1e-4).unwrap_or(
            int8::Requant {
                multiplier: 0,
                shift: 0,
            },
        );
        let bias = (rng.next_u64() % 4001) as i32 - 2000;
        params.extend([bias, rq.multiplier, i32::from(rq.shift)]);
    }
    let wt = b.tensor_q8(tiled.len() as u32 / cp as u32, cp as u32, &tiled);
    let pt = b.tensor_i32(rows as u32, 3, &params);
    match (wt, pt) {
        (Ok(wt), Ok(pt)) => b.qlinear(x, (wt, layout), pt, 3, -2),
        _ => x,
    }
}

/// The tiny W8A8 blob (seed 7 of its parameters).
pub fn tiny_w8a8_blob() -> Vec<u8> {
    tiny_w8a8_blob_in(WeightLayout::Pairs)
}

/// [`tiny_w8a8_blob`] with its `QLINEAR` weights in `layout` (the same weights either way, so
/// the same samples: the tiled layout is what blobs exported before 2026-12-05 use).
pub fn tiny_w8a8_blob_in(layout: WeightLayout) -> Vec<u8> {
    let mut rng = SplitMix(7);
    let mut b = BlobBuilder::new(&[2, 2], Objective::Ddpm, Prediction::Epsilon);
    b.classes(CLASSES, Some(CLASSES));
    let build = |b: &mut BlobBuilder, rng: &mut SplitMix| -> Result<(), microdiff_runtime::Error> {
        let scales = b.tensor(
            microdiff_kernels::Dtype::F32,
            4,
            1,
            &[0.03, 0.02, 0.025, 0.04],
        )?;
        let times = b.tensor(microdiff_kernels::Dtype::F32, 4, 1, &TIMES)?;
        let xq = b.quantize(b.input(), 1, scales, Some(times));
        let h = qlinear(b, rng, xq, (HIDDEN, DATA), layout);
        let te = b.tensor_q8(4, HIDDEN as u32, &codes(rng, 4 * HIDDEN))?;
        let te = b.qgather(te, GatherKey::Time(times));
        let k = b.tensor_i32(4, 1, &[1 << 14, 1 << 14, 3 << 13, 15])?;
        let h = b.qadd(h, te, k);
        let ce = b.tensor_q8(
            u32::from(CLASSES) + 1,
            HIDDEN as u32,
            &codes(rng, 4 * HIDDEN),
        )?;
        let ce = b.qgather(ce, GatherKey::Class);
        let k = b.tensor_i32(4, 1, &[-(1 << 13), 1 << 14, 1 << 13, 15])?;
        let h = b.qadd(h, ce, k);
        let ch: Vec<i32> = (0..HIDDEN)
            .flat_map(|i| [90 + i as i32, 3 * i as i32 - 10])
            .collect();
        let ch = b.tensor_i32(HIDDEN as u32, 2, &ch)?;
        let rq = int8::quantize_multiplier(0.05).unwrap_or(int8::Requant {
            multiplier: 0,
            shift: 0,
        });
        let kn = b.tensor_i32(4, 1, &[5, rq.multiplier, i32::from(rq.shift), -4])?;
        let n = b.qlayer_norm(h, ch, kn);
        let u = qlinear(b, rng, n, (HIDDEN, HIDDEN), layout);
        let table: Vec<i8> = (-128..=127i32).map(|q| q.max(-20) as i8).collect();
        let table = b.tensor_q8(256, 1, &table)?;
        let a = b.qlut(u, table);
        let o = qlinear(b, rng, a, (DATA, HIDDEN), layout);
        let out = b.dequantize(o, -2, 0.015);
        b.output(out);
        for p in programs() {
            b.program(&p);
        }
        Ok(())
    };
    match build(&mut b, &mut rng).and_then(|()| b.build()) {
        Ok(bytes) => bytes,
        Err(e) => panic!("the tiny W8A8 blob must build: {e}"),
    }
}
