//! The architecture record: everything needed to rebuild a model from its weights.
//!
//! It is stored as JSON in the safetensors metadata of every weights file, so a
//! trainer, a sampler or the browser needs only that one file.

use serde::{Deserialize, Serialize};

use crate::error::{IndmError, Result};
use crate::sde::{Sde, SdeKind};

/// Version of the architecture record's layout. Version 2 added the optional `image`
/// record (image models); version 1 files (2D models) still load unchanged.
pub const ARCH_FORMAT_VERSION: u32 = 2;

/// The oldest layout this build reads (2D models written before the image record existed).
pub const ARCH_FORMAT_OLDEST: u32 = 1;

/// The flow `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FlowArch {
    /// `h = id`: the linear diffusion baseline (DDPM++ / NCSN++).
    Identity,
    /// RealNVP-style affine couplings on 2D points with alternating one-coordinate masks.
    Coupling2d {
        /// Number of coupling layers.
        layers: usize,
        /// Width of the conditioner MLP (1 -> hidden -> hidden -> 2).
        hidden: usize,
    },
}

impl FlowArch {
    /// Valid flow names on the command line.
    pub const NAMES: [&'static str; 2] = ["coupling", "identity"];

    /// The flow called `name` with default sizes.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "coupling" | "coupling2d" | "realnvp" => Ok(FlowArch::Coupling2d {
                layers: 8,
                hidden: 64,
            }),
            "identity" | "none" | "id" => Ok(FlowArch::Identity),
            _ => Err(IndmError::unknown("flow", name, &Self::NAMES)),
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            FlowArch::Identity => "identity",
            FlowArch::Coupling2d { .. } => "coupling",
        }
    }
}

/// The score network `s(z, t)`: an MLP on `[z, c, sin(w_k c), cos(w_k c)]` with
/// `c = ln sigma(t)` (Fourier features of the log noise level, as NCSN++ uses) and
/// `w_k = 2^k / 8`, `k < fourier` (`c` spans about 5 units, so the top frequency
/// gives a dozen oscillations; higher ones measured slower to train).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreArch {
    /// Hidden width.
    pub hidden: usize,
    /// Number of hidden layers.
    pub depth: usize,
    /// Number of Fourier frequencies `2^0 .. 2^(fourier-1)`.
    pub fourier: usize,
}

impl Default for ScoreArch {
    fn default() -> Self {
        ScoreArch {
            hidden: 128,
            depth: 3,
            fourier: 8,
        }
    }
}

impl ScoreArch {
    /// Width of the time features.
    pub fn time_features(&self) -> usize {
        1 + 2 * self.fourier
    }
}

/// A complete INDM model description.
///
/// 2D models use `flow` and `score`. Image models (`image` set) describe their flow and
/// score net inside [`ImageArch`]; for them `flow` is [`FlowArch::Identity`] and `score`
/// is unused (kept so the record's 2D layout, which the WGSL 2D runtime reads, is unchanged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Layout version of this record.
    pub format_version: u32,
    /// Dimension of a data point (`C H W` for images).
    pub data_dim: usize,
    /// The latent SDE.
    pub sde: Sde,
    /// Truncation time `eps` used for training, sampling and likelihood.
    pub eps: f64,
    /// The flow of a 2D model.
    pub flow: FlowArch,
    /// The score network of a 2D model.
    pub score: ScoreArch,
    /// The image model (shape, Glow-lite flow, U-Net), absent for 2D models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageArch>,
}

/// The flow of an image model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ImageFlowArch {
    /// `h = id`: the linear diffusion baseline.
    Identity,
    /// Glow-lite without factor-out: `levels` times (squeeze, then `steps` times
    /// actnorm -> invertible 1x1 conv (LU) -> affine coupling), then as many unsqueezes,
    /// so the latent has the image's layout. Coupling conditioners are
    /// conv3x3 -> SiLU -> conv1x1 -> SiLU -> conv3x3 (zero-initialised) of width `hidden`.
    Glow {
        /// Squeeze levels (each halves H and W and multiplies C by 4).
        levels: usize,
        /// Flow steps per level.
        steps: usize,
        /// Width of the coupling conditioners.
        hidden: usize,
    },
}

impl ImageFlowArch {
    /// Valid names on the command line.
    pub const NAMES: [&'static str; 2] = ["glow", "identity"];

    /// The flow called `name` with default sizes (2 levels x 4 steps, width 64).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "glow" | "glow-lite" | "coupling" => Ok(ImageFlowArch::Glow {
                levels: 2,
                steps: 4,
                hidden: 64,
            }),
            "identity" | "none" | "id" => Ok(ImageFlowArch::Identity),
            _ => Err(IndmError::unknown("image flow", name, &Self::NAMES)),
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            ImageFlowArch::Identity => "identity",
            ImageFlowArch::Glow { .. } => "glow",
        }
    }
}

/// The image score net: a small U-Net on the latent (which has the image's layout).
///
/// `conv_in` (3x3) to `channels * mult[0]`; per resolution `i` (`mult.len()` of them, each
/// but the last followed by 2x2 average pooling) `res_blocks` residual blocks to
/// `channels * mult[i]`, each output kept as a skip; a middle block; then per resolution
/// from the lowest, `res_blocks` blocks each adding one skip to its input, and (except at
/// the top) nearest 2x upsampling + conv3x3 to the next resolution's width; finally group
/// norm, SiLU and a zero-initialised conv3x3 to the image channels. A residual block is
/// GN -> SiLU -> conv3x3 -> + dense(SiLU(temb)) per channel -> GN -> SiLU -> conv3x3
/// (zero-initialised) + skip (identity, or a 1x1 conv when the width changes). The time
/// embedding is an MLP `[c, sin(w_k c), cos(w_k c)] -> temb -> SiLU -> temb` of
/// `c = ln sigma(t)`, `w_k = 2^k / 8` (the 2D score net's features).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UNetArch {
    /// Base width.
    pub channels: usize,
    /// Width multiplier per resolution.
    pub mult: Vec<usize>,
    /// Residual blocks per resolution (down and up path each).
    pub res_blocks: usize,
    /// Group-norm groups (divides every width).
    pub groups: usize,
    /// Fourier frequencies of the time features.
    pub fourier: usize,
    /// Width of the time embedding.
    pub temb: usize,
}

impl Default for UNetArch {
    fn default() -> Self {
        UNetArch {
            channels: 32,
            mult: vec![1, 2, 2],
            res_blocks: 1,
            groups: 8,
            fourier: 8,
            temb: 128,
        }
    }
}

/// Group-norm epsilon of the U-Net (the value the WGSL kernels are given).
pub const GROUP_NORM_EPS: f64 = 1e-5;

/// An image model: data shape, flow and score net.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageArch {
    /// Channels (1 or 3).
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// The flow.
    pub flow: ImageFlowArch,
    /// The score net.
    pub unet: UNetArch,
}

impl ImageArch {
    /// `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// `C H W`.
    pub fn dims(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Name and shape of one parameter tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Tensor name in the weights file.
    pub name: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Whether this tensor starts at zero (the last layer of each coupling).
    pub zero_init: bool,
    /// Whether this tensor starts at one (group-norm scales).
    pub ones_init: bool,
    /// Fan-in used for the default uniform initialisation.
    pub fan_in: usize,
}

impl ParamSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl Architecture {
    /// The default 2D INDM: VP, 8 couplings of width 64, score MLP 3 x 128.
    pub fn default_2d(sde: SdeKind, flow: FlowArch) -> Self {
        let sde = match sde {
            SdeKind::Ve => Sde::ve(10.0),
            k => Sde::new(k, 50.0),
        };
        Architecture {
            format_version: ARCH_FORMAT_VERSION,
            data_dim: 2,
            sde,
            eps: 1e-3,
            flow,
            score: ScoreArch::default(),
            image: None,
        }
    }

    /// An image model of `channels x height x width` (eps 1e-5, the spec's value for images;
    /// VE uses sigma_max 50, the CIFAR-10 setting).
    pub fn image(
        channels: usize,
        height: usize,
        width: usize,
        sde: SdeKind,
        flow: ImageFlowArch,
        unet: UNetArch,
    ) -> Self {
        let sde = match sde {
            SdeKind::Ve => Sde::ve(50.0),
            k => Sde::new(k, 50.0),
        };
        Architecture {
            format_version: ARCH_FORMAT_VERSION,
            data_dim: channels * height * width,
            sde,
            eps: 1e-5,
            flow: FlowArch::Identity,
            score: ScoreArch::default(),
            image: Some(ImageArch {
                channels,
                height,
                width,
                flow,
                unet,
            }),
        }
    }

    /// Name of the flow (`coupling`, `glow` or `identity`).
    pub fn flow_name(&self) -> &'static str {
        match &self.image {
            Some(img) => img.flow.name(),
            None => self.flow.name(),
        }
    }

    /// Whether the flow is the identity (the linear-diffusion baseline).
    pub fn is_identity_flow(&self) -> bool {
        match &self.image {
            Some(img) => img.flow == ImageFlowArch::Identity,
            None => self.flow == FlowArch::Identity,
        }
    }

    /// Checks sizes and constants.
    pub fn validate(&self) -> Result<()> {
        if !(ARCH_FORMAT_OLDEST..=ARCH_FORMAT_VERSION).contains(&self.format_version) {
            return Err(IndmError::invalid(
                "architecture format_version",
                self.format_version,
                format!("this build reads versions {ARCH_FORMAT_OLDEST} to {ARCH_FORMAT_VERSION}"),
            ));
        }
        if !(self.eps > 0.0 && self.eps < 0.5) {
            return Err(IndmError::invalid("eps", self.eps, "0 < eps < 0.5"));
        }
        self.sde.validate()?;
        if let Some(img) = &self.image {
            if self.format_version < 2 {
                return Err(IndmError::invalid(
                    "architecture format_version",
                    self.format_version,
                    "2 or later for image models",
                ));
            }
            if self.flow != FlowArch::Identity {
                return Err(IndmError::invalid(
                    "flow",
                    self.flow.name(),
                    "identity for image models (their flow is image.flow)",
                ));
            }
            return crate::image::layout::validate(img, self.data_dim);
        }
        if self.data_dim != 2 {
            return Err(IndmError::invalid(
                "data_dim",
                self.data_dim,
                "2 (2D models)",
            ));
        }
        if let FlowArch::Coupling2d { layers, hidden } = self.flow
            && (layers == 0 || hidden == 0 || layers > 256 || hidden > 4096)
        {
            return Err(IndmError::invalid(
                "coupling flow size",
                format!("{layers} layers x {hidden}"),
                "1..=256 layers and 1..=4096 hidden units",
            ));
        }
        let s = self.score;
        if s.hidden == 0 || s.depth == 0 || s.hidden > 4096 || s.depth > 64 || s.fourier > 24 {
            return Err(IndmError::invalid(
                "score network size",
                format!(
                    "{} hidden x {} layers, {} frequencies",
                    s.hidden, s.depth, s.fourier
                ),
                "hidden 1..=4096, depth 1..=64, fourier 0..=24",
            ));
        }
        Ok(())
    }

    /// Every parameter tensor of the model, in a fixed order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        if let Some(img) = &self.image {
            return crate::image::layout::param_specs(img);
        }
        let mut v = Vec::new();
        let mut dense = |prefix: String, d_in: usize, d_out: usize, zero: bool| {
            v.push(ParamSpec {
                name: format!("{prefix}.weight"),
                shape: vec![d_in, d_out],
                zero_init: zero,
                ones_init: false,
                fan_in: d_in,
            });
            v.push(ParamSpec {
                name: format!("{prefix}.bias"),
                shape: vec![d_out],
                zero_init: zero,
                ones_init: false,
                fan_in: d_in,
            });
        };
        if let FlowArch::Coupling2d { layers, hidden } = self.flow {
            for k in 0..layers {
                dense(format!("flow.{k}.l0"), 1, hidden, false);
                dense(format!("flow.{k}.l1"), hidden, hidden, false);
                dense(format!("flow.{k}.l2"), hidden, 2, true);
            }
        }
        let s = self.score;
        let d_in = self.data_dim + s.time_features();
        dense("score.l0".into(), d_in, s.hidden, false);
        for j in 1..s.depth {
            dense(format!("score.l{j}"), s.hidden, s.hidden, false);
        }
        dense(
            format!("score.l{}", s.depth),
            s.hidden,
            self.data_dim,
            false,
        );
        v
    }

    /// Number of scalar parameters of the flow and of the score net.
    pub fn param_counts(&self) -> (usize, usize) {
        let specs = self.param_specs();
        let flow = specs
            .iter()
            .filter(|p| p.name.starts_with("flow."))
            .map(|p| p.numel())
            .sum();
        let score = specs
            .iter()
            .filter(|p| p.name.starts_with("score."))
            .map(|p| p.numel())
            .sum();
        (flow, score)
    }

    /// The sign that turns the score net's output into `sigma(t) * score`:
    /// -1 for epsilon-prediction (VP, sub-VP), +1 for sigma-scaled output (VE).
    pub fn output_sign(&self) -> f64 {
        match self.sde.kind {
            SdeKind::Vp | SdeKind::SubVp => -1.0,
            SdeKind::Ve => 1.0,
        }
    }

    /// Number of Fourier frequencies of the score net's time features.
    pub fn fourier(&self) -> usize {
        match &self.image {
            Some(img) => img.unet.fourier,
            None => self.score.fourier,
        }
    }

    /// Width of the score net's time features, `1 + 2 fourier`.
    pub fn time_feature_count(&self) -> usize {
        1 + 2 * self.fourier()
    }

    /// The time features `[c, sin(w_k c), cos(w_k c)]` with `c = ln sigma(t)`, `w_k = 2^k / 8`.
    pub fn time_features(&self, t: f64) -> Vec<f64> {
        let c = self.sde.std(t).ln();
        let mut f = Vec::with_capacity(self.time_feature_count());
        f.push(c);
        for k in 0..self.fourier() {
            let w = (1u64 << k) as f64 / 8.0;
            f.push((w * c).sin());
            f.push((w * c).cos());
        }
        f
    }

    /// Describes how two architectures differ (for resume errors), or `None` if equal.
    pub fn difference(&self, other: &Architecture) -> Option<String> {
        let mut d = Vec::new();
        if self.data_dim != other.data_dim {
            d.push(format!("data_dim {} vs {}", self.data_dim, other.data_dim));
        }
        if self.sde != other.sde {
            d.push(format!("sde {:?} vs {:?}", self.sde, other.sde));
        }
        if self.eps != other.eps {
            d.push(format!("eps {} vs {}", self.eps, other.eps));
        }
        if self.flow != other.flow {
            d.push(format!("flow {:?} vs {:?}", self.flow, other.flow));
        }
        if self.score != other.score {
            d.push(format!("score {:?} vs {:?}", self.score, other.score));
        }
        if self.image != other.image {
            d.push(format!("image model {:?} vs {:?}", self.image, other.image));
        }
        if d.is_empty() {
            None
        } else {
            Some(d.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_sizes() {
        let a = Architecture::default_2d(SdeKind::Vp, FlowArch::from_name("coupling").unwrap());
        a.validate().unwrap();
        let (f, s) = a.param_counts();
        // 8 x (1*64+64 + 64*64+64 + 64*2+2) and 19*128+128 + 2*(128*128+128) + 128*2+2.
        assert_eq!(f, 8 * (128 + 4160 + 130));
        assert_eq!(s, 2560 + 2 * 16512 + 258);
        let b = Architecture::default_2d(SdeKind::Vp, FlowArch::Identity);
        assert_eq!(b.param_counts().0, 0);
        assert!(a.difference(&b).unwrap().contains("flow"));
    }

    #[test]
    fn architecture_round_trips_through_json() {
        let a = Architecture::default_2d(SdeKind::Ve, FlowArch::Identity);
        let s = serde_json::to_string(&a).unwrap();
        let b: Architecture = serde_json::from_str(&s).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_names_list_the_valid_ones() {
        let e = FlowArch::from_name("glow").unwrap_err().to_string();
        assert!(e.contains("coupling, identity"), "{e}");
    }
}
