//! Convolution layers: [`Conv1d`] (sequences: speech, text), [`Conv2d`], [`MaxPool2d`] and
//! [`Flatten`] (from images to feature vectors).

use rand::Rng;

use super::{Module, init};
use crate::{Float, Param, Tape, Var};

/// 2-D convolution layer (PyTorch's `nn.Conv2d`): weight `[out, in, kh, kw]`, bias `[out]`,
/// applied to `[N, in, H, W]` inputs with [`Var::conv2d`].
///
/// Initialised as PyTorch does: weight by Kaiming-uniform with `a = √5` and bias uniformly, both
/// in `U(-1/√fan_in, 1/√fan_in)` with `fan_in = in·kh·kw`. Stride 1 and no padding unless set
/// with [`with_stride`](Conv2d::with_stride) and [`with_padding`](Conv2d::with_padding).
///
/// # Panics
/// `forward` panics as [`Var::conv2d`] does (wrong rank, channel count or kernel too large).
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let conv = Conv2d::<f32>::new(3, 8, (3, 3), &mut StdRng::seed_from_u64(0)).with_padding((1, 1));
/// assert_eq!(conv.weight.shape(), vec![8, 3, 3, 3]);
/// let bound = 1.0 / 27f32.sqrt();
/// assert!(conv.weight.value().as_slice().iter().all(|w| w.abs() <= bound));
/// let tape = Tape::new();
/// let y = conv.forward(&tape, tape.constant(Tensor::zeros(&[2, 3, 10, 10])));
/// assert_eq!(y.shape(), vec![2, 8, 10, 10]);
/// let names: Vec<String> = conv.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias"]);
/// ```
#[derive(Module, Clone, Debug)]
pub struct Conv2d<T: Float = f32> {
    /// The weight, `[out_channels, in_channels, kh, kw]`.
    pub weight: Param<T>,
    /// The bias, `[out_channels]`, if the layer has one.
    pub bias: Option<Param<T>>,
    /// The step between windows, `(height, width)`.
    #[module(skip)]
    pub stride: (usize, usize),
    /// Zero padding on both sides of each axis, `(height, width)`.
    #[module(skip)]
    pub padding: (usize, usize),
    #[module(training)]
    training: bool,
}

impl<T: Float> Conv2d<T> {
    /// A layer with bias, stride 1 and no padding, initialised as PyTorch's
    /// `nn.Conv2d(in_channels, out_channels, kernel_size)`.
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        rng: &mut R,
    ) -> Self {
        Self::with_bias(in_channels, out_channels, kernel, true, rng)
    }

    /// As [`new`](Conv2d::new), with or without a bias.
    ///
    /// ```
    /// use tapegrad::nn::{Conv2d, Module};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv2d::<f32>::with_bias(2, 4, (3, 3), false, &mut StdRng::seed_from_u64(1));
    /// assert!(conv.bias.is_none());
    /// assert_eq!(conv.parameters().len(), 1);
    /// ```
    pub fn with_bias<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let shape = [out_channels, in_channels, kernel.0, kernel.1];
        let (weight, bias) = init::layer_params(&shape, bias, rng);
        Conv2d {
            weight,
            bias,
            stride: (1, 1),
            padding: (0, 0),
            training: true,
        }
    }

    /// A layer from a given weight `[out, in, kh, kw]` and optional bias `[out]`, with stride 1
    /// and no padding.
    ///
    /// # Panics
    /// If the weight is not rank 4 or the bias is not `[out]`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let w = Tensor::<f64>::ones(&[1, 1, 2, 2]);
    /// let conv = Conv2d::from_params(Param::new(w), None);
    /// let tape = Tape::new();
    /// let y = conv.forward(&tape, tape.constant(Tensor::ones(&[1, 1, 3, 3])));
    /// assert_eq!(y.value().to_vec(), vec![4., 4., 4., 4.]);
    /// ```
    #[track_caller]
    pub fn from_params(weight: Param<T>, bias: Option<Param<T>>) -> Self {
        init::check_layer_params("Conv2d", "[out, in, kh, kw]", 4, &weight, bias.as_ref());
        Conv2d {
            weight,
            bias,
            stride: (1, 1),
            padding: (0, 0),
            training: true,
        }
    }

    /// The same layer with another stride (builder style).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv2d::<f32>::new(1, 1, (3, 3), &mut StdRng::seed_from_u64(0)).with_stride((2, 2));
    /// let tape = Tape::new();
    /// let y = conv.forward(&tape, tape.constant(Tensor::zeros(&[1, 1, 7, 7])));
    /// assert_eq!(y.shape(), vec![1, 1, 3, 3]);
    /// ```
    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        Conv2d { stride, ..self }
    }

    /// The same layer with another zero padding (builder style).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv2d::<f32>::new(1, 1, (3, 3), &mut StdRng::seed_from_u64(0)).with_padding((1, 0));
    /// assert_eq!(conv.padding, (1, 0));
    /// ```
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        Conv2d { padding, ..self }
    }

    /// The number of input channels.
    ///
    /// ```
    /// use tapegrad::nn::Conv2d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv2d::<f32>::new(3, 8, (5, 5), &mut StdRng::seed_from_u64(0));
    /// assert_eq!((conv.in_channels(), conv.out_channels(), conv.kernel()), (3, 8, (5, 5)));
    /// ```
    pub fn in_channels(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The number of output channels.
    ///
    /// ```
    /// use tapegrad::nn::Conv2d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// assert_eq!(Conv2d::<f64>::new(2, 6, (3, 3), &mut StdRng::seed_from_u64(0)).out_channels(), 6);
    /// ```
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The kernel size `(kh, kw)`.
    ///
    /// ```
    /// use tapegrad::nn::Conv2d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// assert_eq!(Conv2d::<f64>::new(2, 6, (2, 5), &mut StdRng::seed_from_u64(0)).kernel(), (2, 5));
    /// ```
    pub fn kernel(&self) -> (usize, usize) {
        let ws = self.weight.shape();
        (ws[2], ws[3])
    }
}

impl<T: Float> Conv2d<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let w = tape.param(&self.weight);
        let b = self.bias.as_ref().map(|b| tape.param(b));
        x.conv2d(&w, b.as_ref(), self.stride, self.padding)
    }
}

crate::nn::forward_via_inherent!(Conv2d);

/// 1-D convolution layer (PyTorch's `nn.Conv1d`): weight `[out, in, k]`, bias `[out]`, applied
/// to `[N, in, L]` inputs (or unbatched `[in, L]`) with [`Var::conv1d`].
///
/// Initialised as PyTorch does: weight by Kaiming-uniform with `a = √5` and bias uniformly, both
/// in `U(-1/√fan_in, 1/√fan_in)` with `fan_in = in·k`. Stride 1, no padding and dilation 1
/// unless set with the builders. Zero padding only, and no groups (as [`Conv2d`]).
///
/// # Panics
/// `forward` panics as [`Var::conv1d`] does (wrong rank, channel count or kernel too large).
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::Conv1d;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
///
/// let conv = Conv1d::<f32>::new(4, 8, 3, &mut StdRng::seed_from_u64(0)).with_padding(1);
/// assert_eq!(conv.weight.shape(), vec![8, 4, 3]);
/// let bound = 1.0 / 12f32.sqrt();
/// assert!(conv.weight.value().as_slice().iter().all(|w| w.abs() <= bound));
/// let tape = Tape::new();
/// assert_eq!(conv.forward(&tape, tape.constant(Tensor::zeros(&[2, 4, 10]))).shape(), vec![2, 8, 10]);
/// assert_eq!(conv.forward(&tape, tape.constant(Tensor::zeros(&[4, 10]))).shape(), vec![8, 10]);
/// let names: Vec<String> = conv.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias"]);
/// ```
#[derive(Module, Clone, Debug)]
pub struct Conv1d<T: Float = f32> {
    /// The weight, `[out_channels, in_channels, k]`.
    pub weight: Param<T>,
    /// The bias, `[out_channels]`, if the layer has one.
    pub bias: Option<Param<T>>,
    /// The step between windows.
    #[module(skip)]
    pub stride: usize,
    /// Zero padding on both ends.
    #[module(skip)]
    pub padding: usize,
    /// The spacing between kernel taps.
    #[module(skip)]
    pub dilation: usize,
    #[module(training)]
    training: bool,
}

impl<T: Float> Conv1d<T> {
    /// A layer with bias, stride 1, no padding and dilation 1, initialised as PyTorch's
    /// `nn.Conv1d(in_channels, out_channels, kernel_size)`.
    pub fn new<R: Rng + ?Sized>(in_channels: usize, out_channels: usize, kernel: usize, rng: &mut R) -> Self {
        Self::with_bias(in_channels, out_channels, kernel, true, rng)
    }

    /// As [`new`](Conv1d::new), with or without a bias.
    ///
    /// ```
    /// use tapegrad::nn::{Conv1d, Module};
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv1d::<f64>::with_bias(2, 4, 5, false, &mut StdRng::seed_from_u64(1));
    /// assert!(conv.bias.is_none());
    /// assert_eq!(conv.parameters().len(), 1);
    /// ```
    pub fn with_bias<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let shape = [out_channels, in_channels, kernel];
        let (weight, bias) = init::layer_params(&shape, bias, rng);
        Conv1d {
            weight,
            bias,
            stride: 1,
            padding: 0,
            dilation: 1,
            training: true,
        }
    }

    /// A layer from a given weight `[out, in, k]` and optional bias `[out]`, with stride 1, no
    /// padding and dilation 1.
    ///
    /// # Panics
    /// If the weight is not rank 3 or the bias is not `[out]`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::Conv1d;
    /// let conv = Conv1d::from_params(Param::new(Tensor::<f64>::ones(&[1, 1, 2])), None);
    /// let tape = Tape::new();
    /// let y = conv.forward(&tape, tape.constant(Tensor::from_vec(vec![1., 2., 3.], &[1, 1, 3])));
    /// assert_eq!(y.value().to_vec(), vec![3., 5.]);
    /// ```
    #[track_caller]
    pub fn from_params(weight: Param<T>, bias: Option<Param<T>>) -> Self {
        init::check_layer_params("Conv1d", "[out, in, k]", 3, &weight, bias.as_ref());
        Conv1d {
            weight,
            bias,
            stride: 1,
            padding: 0,
            dilation: 1,
            training: true,
        }
    }

    /// The same layer with another stride (builder style).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::Conv1d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv1d::<f32>::new(1, 1, 3, &mut StdRng::seed_from_u64(0)).with_stride(2);
    /// let tape = Tape::new();
    /// assert_eq!(conv.forward(&tape, tape.constant(Tensor::zeros(&[1, 1, 7]))).shape(), vec![1, 1, 3]);
    /// ```
    pub fn with_stride(self, stride: usize) -> Self {
        Conv1d { stride, ..self }
    }

    /// The same layer with another zero padding (builder style).
    ///
    /// ```
    /// use tapegrad::nn::Conv1d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// assert_eq!(Conv1d::<f32>::new(1, 1, 3, &mut StdRng::seed_from_u64(0)).with_padding(2).padding, 2);
    /// ```
    pub fn with_padding(self, padding: usize) -> Self {
        Conv1d { padding, ..self }
    }

    /// The same layer with another dilation (builder style).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::Conv1d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv1d::<f32>::new(1, 1, 3, &mut StdRng::seed_from_u64(0)).with_dilation(2);
    /// let tape = Tape::new();
    /// assert_eq!(conv.forward(&tape, tape.constant(Tensor::zeros(&[1, 1, 7]))).shape(), vec![1, 1, 3]);
    /// ```
    pub fn with_dilation(self, dilation: usize) -> Self {
        Conv1d { dilation, ..self }
    }

    /// The number of input channels.
    ///
    /// ```
    /// use tapegrad::nn::Conv1d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let conv = Conv1d::<f32>::new(3, 8, 5, &mut StdRng::seed_from_u64(0));
    /// assert_eq!((conv.in_channels(), conv.out_channels(), conv.kernel()), (3, 8, 5));
    /// ```
    pub fn in_channels(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The number of output channels.
    ///
    /// ```
    /// use tapegrad::nn::Conv1d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// assert_eq!(Conv1d::<f64>::new(2, 6, 3, &mut StdRng::seed_from_u64(0)).out_channels(), 6);
    /// ```
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The kernel size.
    ///
    /// ```
    /// use tapegrad::nn::Conv1d;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// assert_eq!(Conv1d::<f64>::new(2, 6, 7, &mut StdRng::seed_from_u64(0)).kernel(), 7);
    /// ```
    pub fn kernel(&self) -> usize {
        self.weight.shape()[2]
    }
}

impl<T: Float> Conv1d<T> {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let w = tape.param(&self.weight);
        let b = self.bias.as_ref().map(|b| tape.param(b));
        let shape = x.shape();
        if shape.len() == 2 {
            x.unsqueeze(0)
                .conv1d(&w, b.as_ref(), self.stride, self.padding, self.dilation)
                .squeeze(0)
        } else {
            x.conv1d(&w, b.as_ref(), self.stride, self.padding, self.dilation)
        }
    }
}

crate::nn::forward_via_inherent!(Conv1d);

/// 2-D max pooling (PyTorch's `nn.MaxPool2d`) of `[N, C, H, W]` inputs with
/// [`Var::max_pool2d`]. The stride defaults to the kernel size, as in PyTorch.
///
/// # Panics
/// `forward` panics as [`Var::max_pool2d`] does.
///
/// ```
/// use tapegrad::prelude::*;
/// let pool = MaxPool2d::new((2, 2));
/// let tape = Tape::<f64>::new();
/// let x = tape.constant(Tensor::from_fn(&[1, 1, 4, 4], |i| i as f64));
/// assert_eq!(pool.forward(&tape, x).value().to_vec(), vec![5., 7., 13., 15.]);
/// assert!(Module::<f64>::parameters(&pool).is_empty());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// The window size, `(height, width)`.
    pub kernel: (usize, usize),
    /// The step between windows, `(height, width)`.
    pub stride: (usize, usize),
    /// Implicit `-inf` padding on both sides of each axis, at most half the kernel.
    pub padding: (usize, usize),
}

impl MaxPool2d {
    /// Pooling over `kernel` windows with stride `kernel` and no padding.
    ///
    /// ```
    /// use tapegrad::nn::MaxPool2d;
    /// let pool = MaxPool2d::new((2, 3));
    /// assert_eq!((pool.stride, pool.padding), ((2, 3), (0, 0)));
    /// ```
    pub fn new(kernel: (usize, usize)) -> Self {
        MaxPool2d {
            kernel,
            stride: kernel,
            padding: (0, 0),
        }
    }

    /// The same pooling with another stride (builder style).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let pool = MaxPool2d::new((3, 3)).with_stride((2, 2)).with_padding((1, 1));
    /// let tape = Tape::<f32>::new();
    /// let y = pool.forward(&tape, tape.constant(Tensor::zeros(&[1, 2, 8, 8])));
    /// assert_eq!(y.shape(), vec![1, 2, 4, 4]);
    /// ```
    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        MaxPool2d { stride, ..self }
    }

    /// The same pooling with another padding (builder style), at most half the kernel.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let pool = MaxPool2d::new((2, 2)).with_padding((1, 1));
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::from_vec(vec![-1., -2., -3., -4.], &[1, 1, 2, 2]));
    /// // Padding counts as -inf: each corner window sees its one pixel.
    /// assert_eq!(pool.forward(&tape, x).value().to_vec(), vec![-1., -2., -3., -4.]);
    /// ```
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        MaxPool2d { padding, ..self }
    }
}

impl MaxPool2d {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t, T: Float>(&self, _tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        x.max_pool2d(self.kernel, self.stride, self.padding)
    }
}

crate::nn::forward_via_inherent!(@plain MaxPool2d);

impl<T: Float> Module<T> for MaxPool2d {
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }

    /// Pooling has no mode: this does nothing.
    fn train(&mut self, _mode: bool) {}

    /// Pooling has no mode; it reports `true` (it acts the same in both modes).
    fn is_training(&self) -> bool {
        true
    }
}

/// Flattens every axis after the first (PyTorch's `nn.Flatten()`): `[N, d1, d2, ...]` becomes
/// `[N, d1·d2·...]`, e.g. between convolution layers and a [`Linear`](super::Linear) head.
///
/// # Panics
/// `forward` panics on a rank-0 input.
///
/// ```
/// use tapegrad::prelude::*;
/// let tape = Tape::<f32>::new();
/// let x = tape.constant(Tensor::zeros(&[2, 3, 4, 5]));
/// assert_eq!(Flatten.forward(&tape, x).shape(), vec![2, 60]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flatten;

impl Flatten {
    /// Records the layer applied to `x` on `tape` and returns the output (the same as
    /// [`Forward::forward`](crate::nn::Forward::forward), callable without the trait in scope).
    #[track_caller]
    pub fn forward<'t, T: Float>(&self, _tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        assert!(
            !shape.is_empty(),
            "tapegrad: Flatten: needs a batch axis, got a rank-0 value"
        );
        x.reshape(&[shape[0], shape[1..].iter().product()])
    }
}

crate::nn::forward_via_inherent!(@plain Flatten);

impl<T: Float> Module<T> for Flatten {
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }

    /// Flatten has no mode: this does nothing.
    fn train(&mut self, _mode: bool) {}

    /// Flatten has no mode; it reports `true`.
    fn is_training(&self) -> bool {
        true
    }
}
