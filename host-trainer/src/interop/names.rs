//! The state_dict naming table of docs/interop.md: every parameter's PyTorch name and shape, and
//! where it sits in microdiff's flat parameter buffer ([`Layout`]). The one place the names are
//! written; export and import both read them from here.

use crate::model::{Layout, MlpConfig, Slot};

/// One tensor of the state_dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The state_dict name (`blocks.0.fc1.weight`).
    pub name: String,
    /// Its place in the flat parameter buffer.
    pub slot: Slot,
    /// PyTorch's shape: `[rows, cols]` for a matrix (`(out_features, in_features)`), `[rows]`
    /// for a bias or a layer norm's γ or β.
    pub shape: Vec<usize>,
}

/// Every tensor of the network `config`, in the parameter buffer's order.
pub fn state_dict(config: &MlpConfig) -> Vec<Named> {
    let l = Layout::new(config);
    let matrix = |name: &str, slot: Slot| Named {
        name: name.to_string(),
        slot,
        shape: vec![slot.rows, slot.cols],
    };
    let vector = |name: &str, slot: Slot| Named {
        name: name.to_string(),
        slot,
        shape: vec![slot.len()],
    };
    let mut v = vec![
        matrix("inp.weight", l.w_in),
        vector("inp.bias", l.b_in),
        matrix("time.0.weight", l.w_t1),
        vector("time.0.bias", l.b_t1),
        matrix("time.2.weight", l.w_t2),
        vector("time.2.bias", l.b_t2),
    ];
    if let Some(table) = l.table {
        v.push(matrix("class_emb.weight", table));
    }
    for (k, b) in l.blocks.iter().enumerate() {
        v.push(vector(&format!("blocks.{k}.norm.weight"), b.ln_g));
        v.push(vector(&format!("blocks.{k}.norm.bias"), b.ln_b));
        v.push(matrix(&format!("blocks.{k}.fc1.weight"), b.w1));
        v.push(vector(&format!("blocks.{k}.fc1.bias"), b.b1));
        v.push(matrix(&format!("blocks.{k}.fc2.weight"), b.w2));
        v.push(vector(&format!("blocks.{k}.fc2.bias"), b.b2));
    }
    v.push(vector("norm.weight", l.ln_g));
    v.push(vector("norm.bias", l.ln_b));
    v.push(matrix("out.weight", l.w_out));
    v.push(vector("out.bias", l.b_out));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdiff_kernels::Activation;

    #[test]
    fn the_names_cover_the_buffer_once_in_order() {
        for classes in [0, 10] {
            let c = MlpConfig {
                data_dim: 3,
                hidden: 8,
                ff: 12,
                temb: 4,
                blocks: 2,
                classes,
                act: Activation::Silu,
            };
            let names = state_dict(&c);
            let mut at = 0;
            for n in &names {
                assert_eq!(n.slot.offset, at, "{}", n.name);
                assert_eq!(
                    n.shape.iter().product::<usize>(),
                    n.slot.len(),
                    "{}",
                    n.name
                );
                at += n.slot.len();
            }
            assert_eq!(at, c.parameter_count());
            let expected = 6 + usize::from(classes > 0) + 6 * 2 + 4;
            assert_eq!(names.len(), expected);
            assert_eq!(names[2].shape, [8, 4]);
            assert_eq!(names.last().unwrap().name, "out.bias");
        }
    }
}
