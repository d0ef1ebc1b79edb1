//! VQ-VAE building blocks with the official state-dict names (openai/jukebox `vqvae/encdec.py`,
//! `vqvae/resnet.py`). Every constructor takes the VarBuilder already positioned at the
//! module's own prefix, so the keys read are exactly the official ones.

use crate::ops;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A PyTorch `Conv1d` (weight (out, in, k) + bias), run through [`ops::conv1d`].
#[derive(Debug, Clone)]
pub struct Conv1d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Conv1d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        // PyTorch's default init (kaiming-uniform bound 1/sqrt(fan_in)) when built from a VarMap.
        let bound = 1.0 / ((c_in * k) as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((c_out, c_in, k), "weight", init)?;
        let bias = vb.get_with_hints(c_out, "bias", init)?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
            dilation,
        })
    }
}

impl Conv1d {
    /// The same layer with weights cut from any autograd graph (for inference).
    pub fn detach(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            ..*self
        }
    }
}

impl Conv1d {
    /// `forward(relu(x))`, with the ReLU fused into the convolution where a fast path runs.
    pub fn forward_relu_in(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv1d_ex(
            x,
            &self.weight,
            Some(&self.bias),
            self.stride,
            self.padding,
            self.dilation,
            true,
        )
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv1d(
            x,
            &self.weight,
            Some(&self.bias),
            self.stride,
            self.padding,
            self.dilation,
        )
    }
}

/// A PyTorch `ConvTranspose1d` (weight (in, out, k) + bias), run through [`ops::conv_transpose1d`].
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: usize,
    pub padding: usize,
}

impl ConvTranspose1d {
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let bound = 1.0 / ((c_out * k) as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((c_in, c_out, k), "weight", init)?;
        let bias = vb.get_with_hints(c_out, "bias", init)?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }
}

impl ConvTranspose1d {
    pub fn detach(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            ..*self
        }
    }
}

impl Module for ConvTranspose1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv_transpose1d(x, &self.weight, Some(&self.bias), self.stride, self.padding)
    }
}

/// `ResConv1DBlock`: `x + r · conv1x1(relu(conv3_dil(relu(x))))`; keys `model.1`, `model.3`.
#[derive(Debug, Clone)]
pub struct ResConv1dBlock {
    pub conv1: Conv1d,
    pub conv2: Conv1d,
    pub dilation: usize,
    pub res_scale: f64,
}

impl ResConv1dBlock {
    pub fn new(
        width: usize,
        hidden: usize,
        dilation: usize,
        res_scale: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("model");
        Ok(Self {
            conv1: Conv1d::new(width, hidden, 3, 1, dilation, dilation, vb.pp("1"))?,
            conv2: Conv1d::new(hidden, width, 1, 1, 0, 1, vb.pp("3"))?,
            dilation,
            res_scale,
        })
    }
}

impl ResConv1dBlock {
    pub fn detach(&self) -> Self {
        Self {
            conv1: self.conv1.detach(),
            conv2: self.conv2.detach(),
            ..*self
        }
    }
}

impl ResConv1dBlock {
    /// Training on the CPU: the whole block as one custom op with its own backward
    /// ([`ops::resblock_train::ResBlockOp`]); `None` where it does not apply.
    fn forward_train_fast(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let ps = [
            &self.conv1.weight,
            &self.conv1.bias,
            &self.conv2.weight,
            &self.conv2.bias,
        ];
        let tracked = x.track_op() || ps.iter().any(|p| p.track_op());
        let mut all = vec![x];
        all.extend(ps);
        if !tracked || !ops::train_fast() || !ops::fused_train::applicable(&all) {
            return Ok(None);
        }
        let (_, c, _) = x.dims3()?;
        let (hidden, _, k) = self.conv1.weight.dims3()?;
        let op = ops::resblock_train::ResBlockOp {
            hidden,
            k,
            dilation: self.dilation,
            res_scale: self.res_scale as f32,
        };
        let packed = Tensor::cat(
            &[
                &self.conv1.weight.flatten_all()?,
                &self.conv1.bias,
                &self.conv2.weight.flatten_all()?,
                &self.conv2.bias,
            ],
            0,
        )?;
        if !op.supports(c, packed.dim(0)?) || self.conv2.weight.dims3()? != (c, hidden, 1) {
            return Ok(None);
        }
        x.contiguous()?.apply_op2(&packed, op).map(Some)
    }
}

impl Module for ResConv1dBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Inference on the CPU: the whole block in one tiled pass.
        if let Some(y) = ops::conv::res_block(
            x,
            &self.conv1.weight,
            &self.conv1.bias,
            &self.conv2.weight,
            &self.conv2.bias,
            self.dilation,
            self.res_scale,
        )? {
            return Ok(y);
        }
        if let Some(y) = self.forward_train_fast(x)? {
            return Ok(y);
        }
        let h = self.conv1.forward_relu_in(x)?;
        let h = self.conv2.forward_relu_in(&h)?;
        if self.res_scale == 1.0 {
            x + h
        } else {
            x + (h * self.res_scale)?
        }
    }
}

/// How a `Resnet1D` is built (official arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResnetSpec {
    pub width: usize,
    pub depth: usize,
    pub m_conv: f64,
    pub dilation_growth_rate: usize,
    pub dilation_cycle: Option<usize>,
    /// Official `res_scale` flag: residual scale 1/sqrt(depth) when true.
    pub res_scale: bool,
    /// Blocks listed largest dilation first (decoder resnets).
    pub reverse_dilation: bool,
}

impl ResnetSpec {
    /// Dilation of the block at state-dict index `j`.
    pub fn dilation(&self, j: usize) -> usize {
        let d = if self.reverse_dilation {
            self.depth - 1 - j
        } else {
            j
        };
        let e = match self.dilation_cycle {
            Some(c) if c > 0 => d % c,
            _ => d,
        };
        self.dilation_growth_rate.pow(e as u32)
    }

    /// Receptive radius in input positions (sum of the dilations; each 3-tap block reaches ±d).
    pub fn radius(&self) -> usize {
        (0..self.depth).map(|j| self.dilation(j)).sum()
    }
}

/// `Resnet1D`: `depth` residual blocks. `vb` points at the block list (`…model` for the
/// VQ-VAE, `…blocks` for the prior conditioner, which was built with `checkpoint_res`).
#[derive(Debug, Clone)]
pub struct Resnet1d {
    pub blocks: Vec<ResConv1dBlock>,
}

impl Resnet1d {
    pub fn new(spec: &ResnetSpec, vb: VarBuilder) -> Result<Self> {
        let hidden = (spec.m_conv * spec.width as f64) as usize;
        let scale = if spec.res_scale {
            1.0 / (spec.depth as f64).sqrt()
        } else {
            1.0
        };
        let blocks = (0..spec.depth)
            .map(|j| {
                ResConv1dBlock::new(
                    spec.width,
                    hidden,
                    spec.dilation(j),
                    scale,
                    vb.pp(j.to_string()),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { blocks })
    }
}

impl Resnet1d {
    pub fn detach(&self) -> Self {
        Self {
            blocks: self.blocks.iter().map(|b| b.detach()).collect(),
        }
    }
}

impl Module for Resnet1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        Ok(x)
    }
}

/// `EncoderConvBlock`: `down_t` × [strided conv k=2s → resnet], then conv k3 to `emb_width`.
/// Keys: `model.{i}.0` (conv), `model.{i}.1.model.{j}` (resnet), `model.{down_t}` (out conv).
#[derive(Debug, Clone)]
pub struct EncoderConvBlock {
    pub downs: Vec<(Conv1d, Resnet1d)>,
    pub proj_out: Conv1d,
    /// Blur before each downsampling ([`blur_down`]; `VqvaeConfig::antialias`).
    pub antialias: bool,
}

impl EncoderConvBlock {
    pub fn new(
        c_in: usize,
        emb_width: usize,
        down_t: usize,
        stride_t: usize,
        spec: &ResnetSpec,
        antialias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        if antialias && stride_t != 2 {
            candle_core::bail!("antialias supports stride 2 only, got {stride_t}");
        }
        let vb = vb.pp("model");
        let (filter, pad) = (stride_t * 2, stride_t / 2);
        let mut downs = Vec::with_capacity(down_t);
        for i in 0..down_t {
            let vbi = vb.pp(i.to_string());
            let cin = if i == 0 { c_in } else { spec.width };
            let conv = Conv1d::new(cin, spec.width, filter, stride_t, pad, 1, vbi.pp("0"))?;
            let res = Resnet1d::new(spec, vbi.pp("1").pp("model"))?;
            downs.push((conv, res));
        }
        let proj_out = Conv1d::new(spec.width, emb_width, 3, 1, 1, 1, vb.pp(down_t.to_string()))?;
        Ok(Self {
            downs,
            proj_out,
            antialias,
        })
    }
}

/// The stride-2 convolution `conv` with a blur before its subsampling (anti-aliased
/// downsampling: Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"): the
/// convolution runs at stride 1 (`y`), and output i is `¼ y[2i−1] + ½ y[2i] + ¼ y[2i+1]`
/// (zero outside `y`) where the plain strided convolution gives `y[2i]`. Same output length;
/// differentiable (candle's pad, reshape, narrow and affine ops).
pub fn blur_down(conv: &Conv1d, x: &Tensor) -> Result<Tensor> {
    if conv.stride != 2 {
        candle_core::bail!(
            "blur_down needs a stride-2 convolution, got {}",
            conv.stride
        );
    }
    let y = ops::conv1d(
        x,
        &conv.weight,
        Some(&conv.bias),
        1,
        conv.padding,
        conv.dilation,
    )?;
    let (b, c, t) = y.dims3()?;
    let n = t.div_ceil(2); // the strided convolution's output length
                           // yp[j] = y[j − 1], zero-padded to 2(n + 1) so that even/odd pairs split by a reshape.
    let yp = y.pad_with_zeros(2, 1, 2 * n + 1 - t)?;
    let pairs = yp.reshape((b, c, n + 1, 2))?;
    let even = pairs.narrow(3, 0, 1)?.squeeze(3)?; // y[2i − 1]
    let odd = pairs.narrow(3, 1, 1)?.squeeze(3)?; // y[2i]
    let z = ((even.narrow(2, 0, n)? * 0.25)? + (odd.narrow(2, 0, n)? * 0.5)?)?;
    z + (even.narrow(2, 1, n)? * 0.25)?
}

impl EncoderConvBlock {
    pub fn detach(&self) -> Self {
        Self {
            downs: self
                .downs
                .iter()
                .map(|(c, r)| (c.detach(), r.detach()))
                .collect(),
            proj_out: self.proj_out.detach(),
            antialias: self.antialias,
        }
    }
}

impl Module for EncoderConvBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv, res) in &self.downs {
            let y = if self.antialias {
                blur_down(conv, &x)?
            } else {
                conv.forward(&x)?
            };
            x = res.forward(&y)?;
        }
        self.proj_out.forward(&x)
    }
}

/// `DecoderConvBock` (sic): conv k3 `emb_width` → width, then `down_t` × [resnet (reversed
/// dilations) → transposed conv k=2s, stride s]; the last one outputs `c_out` channels.
/// Keys: `model.0`, `model.{i+1}.0.model.{j}` (resnet), `model.{i+1}.1` (transposed conv).
/// The prior conditioner reuses this with `res_key = "blocks"`.
#[derive(Debug, Clone)]
pub struct DecoderConvBlock {
    pub proj_in: Conv1d,
    pub ups: Vec<(Resnet1d, ConvTranspose1d)>,
}

impl DecoderConvBlock {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        emb_width: usize,
        c_out: usize,
        down_t: usize,
        stride_t: usize,
        spec: &ResnetSpec,
        res_key: &str,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("model");
        let (filter, pad) = (stride_t * 2, stride_t / 2);
        let proj_in = Conv1d::new(emb_width, spec.width, 3, 1, 1, 1, vb.pp("0"))?;
        let mut ups = Vec::with_capacity(down_t);
        for i in 0..down_t {
            let vbi = vb.pp((i + 1).to_string());
            let res = Resnet1d::new(spec, vbi.pp("0").pp(res_key))?;
            let out = if i + 1 == down_t { c_out } else { spec.width };
            let up = ConvTranspose1d::new(spec.width, out, filter, stride_t, pad, vbi.pp("1"))?;
            ups.push((res, up));
        }
        Ok(Self { proj_in, ups })
    }
}

impl DecoderConvBlock {
    pub fn detach(&self) -> Self {
        Self {
            proj_in: self.proj_in.detach(),
            ups: self
                .ups
                .iter()
                .map(|(r, u)| (r.detach(), u.detach()))
                .collect(),
        }
    }
}

impl Module for DecoderConvBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.proj_in.forward(x)?;
        for (res, up) in &self.ups {
            x = up.forward(&res.forward(&x)?)?;
        }
        Ok(x)
    }
}
