//! The structure of an image model as data: the flow's levels, the U-Net's blocks, every
//! parameter tensor and the cost of one score evaluation. The burn forward passes, the
//! `f64` reference and the parameter list all walk these same lists, so they cannot drift
//! apart.
//!
//! Parameter names (all `f32`, NCHW conventions of `shared/src/gpu/image_ops`):
//!
//! | tensor | shape |
//! |---|---|
//! | `flow.{l}.{k}.an.bias`, `.an.logs` | `[C_l]` (actnorm `y = (x + bias) exp(logs)`) |
//! | `flow.{l}.{k}.inv.lower`, `.inv.upper` | `[C_l, C_l]` (only the strict lower / upper part is used) |
//! | `flow.{l}.{k}.inv.logs` | `[C_l]` (`W = L (U + diag(exp(logs)))`, permutation = identity) |
//! | `flow.{l}.{k}.cp.c0.weight` / `.bias` | `[hidden, C_l/2, 3, 3]` / `[hidden]` |
//! | `flow.{l}.{k}.cp.c1.weight` / `.bias` | `[hidden, hidden, 1, 1]` / `[hidden]` |
//! | `flow.{l}.{k}.cp.c2.weight` / `.bias` | `[C_l, hidden, 3, 3]` / `[C_l]` (zero-initialised) |
//! | `score.temb.l0`, `score.temb.l1` `.weight` / `.bias` | `[1 + 2F, temb]`, `[temb, temb]` / `[temb]` |
//! | `score.conv_in.weight` / `.bias` | `[ch_0, C, 3, 3]` / `[ch_0]` |
//! | residual block `p`: `p.n1.gamma`/`.beta`, `p.c1.*`, `p.t.*`, `p.n2.*`, `p.c2.*` (zero), `p.skip.*` | see [`UNetBlock::Res`] |
//! | `score.up.{i}.conv.weight` / `.bias` | `[ch_{i-1}, ch_i, 3, 3]` / `[ch_{i-1}]` |
//! | `score.out_norm.gamma` / `.beta`, `score.conv_out.weight` / `.bias` | `[ch_0]`, `[C, ch_0, 3, 3]` (zero) / `[C]` |

use crate::arch::{ImageArch, ImageFlowArch, ParamSpec, UNetArch};
use crate::error::{IndmError, Result};

/// One flow level: the shape `[C_l, H_l, W_l]` after its squeeze, and its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlowLevel {
    /// Channels after the squeeze (`C 4^(l+1)`).
    pub channels: usize,
    /// Height after the squeeze.
    pub height: usize,
    /// Width after the squeeze.
    pub width: usize,
    /// Flow steps.
    pub steps: usize,
    /// Conditioner width.
    pub hidden: usize,
}

impl GlowLevel {
    /// Channels of the conditioning half and of the transformed half (equal: `C_l` is a
    /// multiple of 4).
    pub fn half(&self) -> usize {
        self.channels / 2
    }
}

/// The levels of the flow (empty for the identity).
pub fn glow_levels(img: &ImageArch) -> Vec<GlowLevel> {
    match img.flow {
        ImageFlowArch::Identity => Vec::new(),
        ImageFlowArch::Glow {
            levels,
            steps,
            hidden,
        } => (0..levels)
            .map(|l| GlowLevel {
                channels: img.channels << (2 * (l + 1)),
                height: img.height >> (l + 1),
                width: img.width >> (l + 1),
                steps,
                hidden,
            })
            .collect(),
    }
}

/// Name prefix of flow step `k` of level `l`.
pub fn step_prefix(l: usize, k: usize) -> String {
    format!("flow.{l}.{k}")
}

/// Whether flow step `k` conditions on the first half of the channels and transforms the
/// second (`k` even) or the other way round (`k` odd). Alternating keeps the flow the
/// identity at initialisation (every 1x1 conv starts at `W = I`) while both halves change.
pub fn conditions_on_first_half(k: usize) -> bool {
    k.is_multiple_of(2)
}

/// One block of the U-Net, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UNetBlock {
    /// `score.conv_in`: conv3x3 from the image channels.
    ConvIn {
        /// Image channels.
        cin: usize,
        /// Output width.
        cout: usize,
        /// Spatial side.
        size: usize,
    },
    /// A residual block `prefix`: `n1` (GN on `cin`), `c1` conv3x3 `cin -> cout`, `t` dense
    /// `temb -> cout`, `n2` (GN on `cout`), `c2` conv3x3 `cout -> cout` (zero-initialised),
    /// `skip` conv1x1 `cin -> cout` when `cin != cout`.
    Res {
        /// Name prefix, e.g. `score.down.0.0`.
        prefix: String,
        /// Input width.
        cin: usize,
        /// Output width.
        cout: usize,
        /// Spatial side.
        size: usize,
        /// Add the most recent skip to the input first (up path).
        pop_skip: bool,
        /// Keep the output as a skip (down path).
        push_skip: bool,
    },
    /// 2x2 average pooling.
    Down,
    /// Nearest 2x upsampling then conv3x3 `prefix.conv` from `cin` to `cout` at the new size.
    Up {
        /// Name prefix, e.g. `score.up.1`.
        prefix: String,
        /// Input width.
        cin: usize,
        /// Output width.
        cout: usize,
        /// Spatial side after upsampling.
        size: usize,
    },
    /// GN (`score.out_norm`) -> SiLU -> conv3x3 `score.conv_out` (zero-initialised).
    Out {
        /// Input width.
        cin: usize,
        /// Image channels.
        cout: usize,
        /// Spatial side.
        size: usize,
    },
}

/// The U-Net's blocks for images of `channels x size x size`.
pub fn unet_blocks(u: &UNetArch, channels: usize, size: usize) -> Vec<UNetBlock> {
    let ch: Vec<usize> = u.mult.iter().map(|m| m * u.channels).collect();
    let levels = ch.len();
    let mut v = vec![UNetBlock::ConvIn {
        cin: channels,
        cout: ch[0],
        size,
    }];
    let mut width = ch[0];
    let mut s = size;
    for (i, &c) in ch.iter().enumerate() {
        for j in 0..u.res_blocks {
            v.push(UNetBlock::Res {
                prefix: format!("score.down.{i}.{j}"),
                cin: width,
                cout: c,
                size: s,
                pop_skip: false,
                push_skip: true,
            });
            width = c;
        }
        if i + 1 < levels {
            v.push(UNetBlock::Down);
            s /= 2;
        }
    }
    v.push(UNetBlock::Res {
        prefix: "score.mid".into(),
        cin: width,
        cout: width,
        size: s,
        pop_skip: false,
        push_skip: false,
    });
    for i in (0..levels).rev() {
        for j in 0..u.res_blocks {
            v.push(UNetBlock::Res {
                prefix: format!("score.up.{i}.{j}"),
                cin: ch[i],
                cout: ch[i],
                size: s,
                pop_skip: true,
                push_skip: false,
            });
        }
        if i > 0 {
            s *= 2;
            v.push(UNetBlock::Up {
                prefix: format!("score.up.{i}"),
                cin: ch[i],
                cout: ch[i - 1],
                size: s,
            });
        }
    }
    v.push(UNetBlock::Out {
        cin: ch[0],
        cout: channels,
        size,
    });
    v
}

/// Rejects image architectures the layers cannot run.
pub fn validate(img: &ImageArch, data_dim: usize) -> Result<()> {
    if img.channels == 0 || img.channels > 4 {
        return Err(IndmError::invalid(
            "image channels",
            img.channels,
            "1 to 4 (grey or RGB)",
        ));
    }
    if img.height == 0 || img.height > 1024 || img.width != img.height {
        return Err(IndmError::invalid(
            "image size",
            format!("{}x{}", img.width, img.height),
            "a square of side 1..=1024",
        ));
    }
    if data_dim != img.dims() {
        return Err(IndmError::invalid(
            "data_dim",
            data_dim,
            format!("C H W = {} for the image shape", img.dims()),
        ));
    }
    if let ImageFlowArch::Glow {
        levels,
        steps,
        hidden,
    } = img.flow
    {
        if levels == 0 || levels > 6 || steps == 0 || steps > 64 || hidden == 0 || hidden > 1024 {
            return Err(IndmError::invalid(
                "glow flow size",
                format!("{levels} levels x {steps} steps, width {hidden}"),
                "1..=6 levels, 1..=64 steps, width 1..=1024",
            ));
        }
        if !img.height.is_multiple_of(1 << levels) {
            return Err(IndmError::invalid(
                "image size",
                img.height,
                format!("a multiple of 2^{levels} for {levels} squeeze levels"),
            ));
        }
    }
    let u = &img.unet;
    if u.channels == 0
        || u.channels > 512
        || u.mult.is_empty()
        || u.mult.len() > 6
        || u.mult.iter().any(|&m| m == 0 || m > 16)
        || u.res_blocks == 0
        || u.res_blocks > 8
        || u.temb == 0
        || u.temb > 4096
        || u.fourier > 24
    {
        return Err(IndmError::invalid(
            "U-Net size",
            format!("{u:?}"),
            "channels 1..=512, 1..=6 multipliers in 1..=16, 1..=8 blocks, temb 1..=4096, fourier 0..=24",
        ));
    }
    let down = u.mult.len() - 1;
    if !img.height.is_multiple_of(1 << down) {
        return Err(IndmError::invalid(
            "image size",
            img.height,
            format!(
                "a multiple of 2^{down} for a U-Net with {} resolutions",
                u.mult.len()
            ),
        ));
    }
    if u.groups == 0
        || u.mult
            .iter()
            .any(|m| !(m * u.channels).is_multiple_of(u.groups))
    {
        return Err(IndmError::invalid(
            "U-Net group-norm groups",
            u.groups,
            "a divisor of every width channels * mult",
        ));
    }
    Ok(())
}

fn spec(name: String, shape: Vec<usize>, fan_in: usize) -> ParamSpec {
    ParamSpec {
        name,
        shape,
        zero_init: false,
        ones_init: false,
        fan_in,
    }
}

fn zeros(name: String, shape: Vec<usize>) -> ParamSpec {
    ParamSpec {
        zero_init: true,
        ..spec(name, shape, 1)
    }
}

fn ones(name: String, shape: Vec<usize>) -> ParamSpec {
    ParamSpec {
        ones_init: true,
        ..spec(name, shape, 1)
    }
}

fn conv(v: &mut Vec<ParamSpec>, prefix: &str, cout: usize, cin: usize, k: usize, zero: bool) {
    let (w, b) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
    if zero {
        v.push(zeros(w, vec![cout, cin, k, k]));
        v.push(zeros(b, vec![cout]));
    } else {
        v.push(spec(w, vec![cout, cin, k, k], cin * k * k));
        v.push(spec(b, vec![cout], cin * k * k));
    }
}

fn dense(v: &mut Vec<ParamSpec>, prefix: &str, d_in: usize, d_out: usize) {
    v.push(spec(format!("{prefix}.weight"), vec![d_in, d_out], d_in));
    v.push(spec(format!("{prefix}.bias"), vec![d_out], d_in));
}

fn norm(v: &mut Vec<ParamSpec>, prefix: &str, c: usize) {
    v.push(ones(format!("{prefix}.gamma"), vec![c]));
    v.push(zeros(format!("{prefix}.beta"), vec![c]));
}

/// Every parameter tensor of an image model, flow first, in a fixed order.
pub fn param_specs(img: &ImageArch) -> Vec<ParamSpec> {
    let mut v = Vec::new();
    for (l, lv) in glow_levels(img).iter().enumerate() {
        let c = lv.channels;
        for k in 0..lv.steps {
            let p = step_prefix(l, k);
            v.push(zeros(format!("{p}.an.bias"), vec![c]));
            v.push(zeros(format!("{p}.an.logs"), vec![c]));
            v.push(zeros(format!("{p}.inv.lower"), vec![c, c]));
            v.push(zeros(format!("{p}.inv.upper"), vec![c, c]));
            v.push(zeros(format!("{p}.inv.logs"), vec![c]));
            conv(
                &mut v,
                &format!("{p}.cp.c0"),
                lv.hidden,
                lv.half(),
                3,
                false,
            );
            conv(
                &mut v,
                &format!("{p}.cp.c1"),
                lv.hidden,
                lv.hidden,
                1,
                false,
            );
            conv(
                &mut v,
                &format!("{p}.cp.c2"),
                2 * lv.half(),
                lv.hidden,
                3,
                true,
            );
        }
    }
    let u = &img.unet;
    dense(&mut v, "score.temb.l0", 1 + 2 * u.fourier, u.temb);
    dense(&mut v, "score.temb.l1", u.temb, u.temb);
    for b in unet_blocks(u, img.channels, img.height) {
        match b {
            UNetBlock::ConvIn { cin, cout, .. } => {
                conv(&mut v, "score.conv_in", cout, cin, 3, false)
            }
            UNetBlock::Res {
                prefix, cin, cout, ..
            } => {
                norm(&mut v, &format!("{prefix}.n1"), cin);
                conv(&mut v, &format!("{prefix}.c1"), cout, cin, 3, false);
                dense(&mut v, &format!("{prefix}.t"), u.temb, cout);
                norm(&mut v, &format!("{prefix}.n2"), cout);
                conv(&mut v, &format!("{prefix}.c2"), cout, cout, 3, true);
                if cin != cout {
                    conv(&mut v, &format!("{prefix}.skip"), cout, cin, 1, false);
                }
            }
            UNetBlock::Down => {}
            UNetBlock::Up {
                prefix, cin, cout, ..
            } => conv(&mut v, &format!("{prefix}.conv"), cout, cin, 3, false),
            UNetBlock::Out { cin, cout, .. } => {
                norm(&mut v, "score.out_norm", cin);
                conv(&mut v, "score.conv_out", cout, cin, 3, true);
            }
        }
    }
    v
}

/// Floating-point operations of one score-net evaluation on one image (a multiply-add
/// counts 2; convolutions, dense layers, and one operation per element for every norm,
/// activation, addition, pooling and upsampling, so the count is a slight overestimate of
/// the arithmetic and excludes nothing).
pub fn unet_flops(img: &ImageArch) -> u64 {
    let u = &img.unet;
    let conv = |cin: usize, cout: usize, k: usize, size: usize| -> u64 {
        (2 * cin * cout * k * k * size * size + cout * size * size) as u64
    };
    // Group norm: mean, variance, normalise, scale and shift (~ 8 per element); SiLU ~ 4.
    let gn_silu = |c: usize, size: usize| -> u64 { (12 * c * size * size) as u64 };
    let feats = 1 + 2 * u.fourier;
    let mut f = (2 * feats * u.temb + 2 * u.temb * u.temb + 8 * u.temb) as u64;
    for b in unet_blocks(u, img.channels, img.height) {
        f += match b {
            UNetBlock::ConvIn { cin, cout, size } => conv(cin, cout, 3, size),
            UNetBlock::Res {
                cin,
                cout,
                size,
                pop_skip,
                ..
            } => {
                let px = (size * size) as u64;
                let skip_add = if pop_skip { cin as u64 * px } else { 0 };
                let shortcut = if cin != cout {
                    conv(cin, cout, 1, size)
                } else {
                    0
                };
                skip_add
                    + gn_silu(cin, size)
                    + conv(cin, cout, 3, size)
                    + (2 * u.temb * cout) as u64
                    + cout as u64 * px
                    + gn_silu(cout, size)
                    + conv(cout, cout, 3, size)
                    + shortcut
                    + cout as u64 * px
            }
            UNetBlock::Down => 0,
            UNetBlock::Up {
                cin, cout, size, ..
            } => (cin * size * size) as u64 + conv(cin, cout, 3, size),
            UNetBlock::Out { cin, cout, size } => gn_silu(cin, size) + conv(cin, cout, 3, size),
        };
    }
    f
}

/// Floating-point operations of one flow pass (forward or inverse) on one image.
pub fn glow_flops(img: &ImageArch) -> u64 {
    glow_levels(img)
        .iter()
        .map(|lv| {
            let px = (lv.height * lv.width) as u64;
            let (c, h, a) = (lv.channels as u64, lv.hidden as u64, lv.half() as u64);
            let step = px
                * (2 * c // actnorm
                    + 2 * c * c // 1x1 conv
                    + 2 * a * h * 9 + h // conditioner conv3x3 + bias
                    + 4 * h // SiLU
                    + 2 * h * h + h
                    + 4 * h
                    + 2 * h * 2 * a * 9 + 2 * a
                    + 6 * a); // tanh, exp, affine
            step * lv.steps as u64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Architecture;
    use crate::sde::SdeKind;

    fn cifar() -> Architecture {
        Architecture::image(
            3,
            32,
            32,
            SdeKind::Vp,
            ImageFlowArch::from_name("glow").unwrap(),
            UNetArch::default(),
        )
    }

    #[test]
    fn the_default_unet_fits_the_browser_budget() {
        let a = cifar();
        a.validate().unwrap();
        let img = a.image.as_ref().unwrap();
        let flops = unet_flops(img);
        // Hand count of the dominant terms (3x3 convs) for width 32, mult (1, 2, 2), one block:
        // 32x32: conv_in 3->32, down 32->32 (2 convs), up 32->32 (2 convs), out 32->3;
        // 16x16: down 32->64 + 64->64 + skip 1x1, up 64->64 (2), up-conv 64->32 at 32x32;
        // 8x8: down, mid, up: 3 x 2 convs 64->64; up-conv 64->64 at 16x16.
        let c3 = |i: u64, o: u64, s: u64| 2 * 9 * i * o * s * s;
        let convs = c3(3, 32, 32)
            + 4 * c3(32, 32, 32)
            + c3(32, 3, 32)
            + c3(32, 64, 16)
            + c3(64, 64, 16)
            + 2 * 32 * 64 * 256
            + 2 * c3(64, 64, 16)
            + c3(64, 32, 32)
            + 6 * c3(64, 64, 8)
            + c3(64, 64, 16);
        assert!(
            flops > convs && flops < convs + convs / 5,
            "{flops} vs convs {convs}"
        );
        assert!(
            flops <= 2_000_000_000,
            "U-Net costs {flops} FLOP per 32x32 evaluation"
        );
        // The flow is cheap next to it.
        assert!(glow_flops(img) < flops);
    }

    #[test]
    fn specs_are_unique_and_the_flow_comes_first() {
        let a = cifar();
        let specs = a.param_specs();
        let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let first_score = names.iter().position(|n| n.starts_with("score.")).unwrap();
        assert!(names[..first_score].iter().all(|n| n.starts_with("flow.")));
        assert!(names[first_score..].iter().all(|n| n.starts_with("score.")));
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate tensor names");
        let (f, s) = a.param_counts();
        assert!(f > 0 && s > 0);
        // 2 levels: 12 and 48 channels, 4 steps each.
        let lv = glow_levels(a.image.as_ref().unwrap());
        assert_eq!(
            lv.iter()
                .map(|l| (l.channels, l.height))
                .collect::<Vec<_>>(),
            vec![(12, 16), (48, 8)]
        );
    }

    #[test]
    fn bad_image_architectures_are_refused_with_the_reason() {
        let mut a = cifar();
        a.image.as_mut().unwrap().unet.groups = 7;
        assert!(a.validate().unwrap_err().to_string().contains("groups"));
        let mut a = cifar();
        a.image.as_mut().unwrap().height = 30;
        a.image.as_mut().unwrap().width = 30;
        a.data_dim = 3 * 30 * 30;
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("multiple of")
        );
        let mut a = cifar();
        a.data_dim = 5;
        assert!(a.validate().unwrap_err().to_string().contains("data_dim"));
        let mut a = cifar();
        a.format_version = 1;
        assert!(a.validate().is_err());
    }
}
