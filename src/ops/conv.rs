//! Sliding windows over images: `unfold` (im2col) and its adjoint `fold` (col2im), `conv2d`
//! built from them (unfold + one matrix product), and max pooling.
//!
//! `unfold` and `fold` are linear and each is the other's adjoint, so the backward rule of each
//! is the other op: gradients of any order through a convolution need no further rule. Max
//! pooling is the same idea with indices: `gather_max(h, src)` reads `h` at the first maximum of
//! `src` in each window (`max_pool2d(x)` is `gather_max(x, x)`), its adjoint `unpool_max` puts
//! values back at those positions, and each is the other's backward (the positions are constants
//! of the rule, so second derivatives are exactly 0 at the kinks, as with `max_axis`).

use super::{Args, Extra, Fwd, Op, Operand, Primitive, Vjp};
use crate::tensor::Shape;
use crate::{Float, Tensor, Var};

/// A sliding window over the last two axes (height, width) of an `[N, C, H, W]` value: kernel
/// size, stride, zero padding on both sides and dilation, each as `(height, width)`, as in
/// PyTorch's `torch.nn.functional.unfold`.
///
/// The window at output position `(oy, ox)` reads the input at rows
/// `oy·stride.0 - padding.0 + i·dilation.0` for `i < kernel.0` (and likewise for columns), so
/// the output is `(H + 2·padding.0 - dilation.0·(kernel.0 - 1) - 1) / stride.0 + 1` high.
///
/// ```
/// use tapegrad::Window2d;
/// let w = Window2d::new((3, 3)).stride((2, 2)).padding((1, 1));
/// assert_eq!(w.output_size((8, 7)), Some((4, 4)));
/// assert_eq!(Window2d::new((3, 3)).output_size((2, 5)), None); // does not fit
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window2d {
    /// Kernel size `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step between windows `(sh, sw)`; default `(1, 1)`.
    pub stride: (usize, usize),
    /// Implicit padding added to both sides of each axis `(ph, pw)`; default `(0, 0)`.
    pub padding: (usize, usize),
    /// Spacing between kernel taps `(dh, dw)`; default `(1, 1)`.
    pub dilation: (usize, usize),
}

impl Window2d {
    /// A `kernel`-sized window with stride 1, no padding and dilation 1.
    ///
    /// ```
    /// use tapegrad::Window2d;
    /// let w = Window2d::new((2, 3));
    /// assert_eq!((w.stride, w.padding, w.dilation), ((1, 1), (0, 0), (1, 1)));
    /// ```
    pub fn new(kernel: (usize, usize)) -> Self {
        Window2d {
            kernel,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }

    /// The same window with another stride.
    ///
    /// ```
    /// use tapegrad::Window2d;
    /// assert_eq!(Window2d::new((2, 2)).stride((2, 2)).output_size((4, 4)), Some((2, 2)));
    /// ```
    pub fn stride(self, stride: (usize, usize)) -> Self {
        Window2d { stride, ..self }
    }

    /// The same window with another padding.
    ///
    /// ```
    /// use tapegrad::Window2d;
    /// assert_eq!(Window2d::new((3, 3)).padding((1, 1)).output_size((4, 4)), Some((4, 4)));
    /// ```
    pub fn padding(self, padding: (usize, usize)) -> Self {
        Window2d { padding, ..self }
    }

    /// The same window with another dilation.
    ///
    /// ```
    /// use tapegrad::Window2d;
    /// assert_eq!(Window2d::new((3, 3)).dilation((2, 2)).output_size((5, 5)), Some((1, 1)));
    /// ```
    pub fn dilation(self, dilation: (usize, usize)) -> Self {
        Window2d { dilation, ..self }
    }

    /// The number of window positions `(rows, columns)` over an input of `(height, width)`, or
    /// `None` when the (dilated) kernel does not fit in the padded input or a kernel size,
    /// stride or dilation is 0.
    ///
    /// ```
    /// use tapegrad::Window2d;
    /// assert_eq!(Window2d::new((3, 2)).output_size((5, 5)), Some((3, 4)));
    /// assert_eq!(Window2d::new((3, 2)).stride((0, 1)).output_size((5, 5)), None);
    /// ```
    pub fn output_size(&self, input: (usize, usize)) -> Option<(usize, usize)> {
        let axis = |size: usize, k: usize, s: usize, p: usize, d: usize| {
            if k == 0 || s == 0 || d == 0 {
                return None;
            }
            let span = d.checked_mul(k - 1)?.checked_add(1)?;
            let padded = size.checked_add(p.checked_mul(2)?)?;
            (span <= padded).then(|| (padded - span) / s + 1)
        };
        Some((
            axis(
                input.0,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            axis(
                input.1,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }

    /// Panics (naming `op` and `shape`) unless `shape` is `[N, C, H, W]` and the window fits;
    /// returns the output size.
    #[track_caller]
    pub(crate) fn check(&self, op: &str, shape: &[usize]) -> (usize, usize) {
        assert!(
            shape.len() == 4,
            "tapegrad: {op}: needs an [N, C, H, W] input, got shape {shape:?}"
        );
        let w = self;
        assert!(
            w.kernel.0 > 0 && w.kernel.1 > 0,
            "tapegrad: {op}: kernel size must be positive, got {:?} (input shape {shape:?})",
            w.kernel
        );
        assert!(
            w.stride.0 > 0 && w.stride.1 > 0,
            "tapegrad: {op}: stride must be positive, got {:?} (input shape {shape:?})",
            w.stride
        );
        assert!(
            w.dilation.0 > 0 && w.dilation.1 > 0,
            "tapegrad: {op}: dilation must be positive, got {:?} (input shape {shape:?})",
            w.dilation
        );
        match self.output_size((shape[2], shape[3])) {
            Some(out) => out,
            None => panic!(
                "tapegrad: {op}: kernel {:?} (dilation {:?}) is larger than the padded input \
                 (input shape {shape:?}, padding {:?})",
                w.kernel, w.dilation, w.padding
            ),
        }
    }
}

/// A [`Window2d`] as stored in a node: 16-bit kernel, stride and padding, 8-bit dilation, so
/// that [`Args`] (and every node) keeps its size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PackedWindow {
    kernel: [u16; 2],
    stride: [u16; 2],
    padding: [u16; 2],
    dilation: [u8; 2],
}

impl PackedWindow {
    #[track_caller]
    pub(crate) fn pack(op: &str, w: &Window2d) -> Self {
        #[track_caller]
        fn u16s(op: &str, what: &str, (a, b): (usize, usize)) -> [u16; 2] {
            match (u16::try_from(a), u16::try_from(b)) {
                (Ok(a), Ok(b)) => [a, b],
                _ => panic!("tapegrad: {op}: {what} ({a}, {b}) does not fit in 16 bits"),
            }
        }
        let (d0, d1) = w.dilation;
        let dilation = match (u8::try_from(d0), u8::try_from(d1)) {
            (Ok(a), Ok(b)) => [a, b],
            _ => panic!("tapegrad: {op}: dilation ({d0}, {d1}) is above the supported 255"),
        };
        PackedWindow {
            kernel: u16s(op, "kernel size", w.kernel),
            stride: u16s(op, "stride", w.stride),
            padding: u16s(op, "padding", w.padding),
            dilation,
        }
    }

    pub(crate) fn unpack(self) -> Window2d {
        let pair = |[a, b]: [u16; 2]| (usize::from(a), usize::from(b));
        Window2d {
            kernel: pair(self.kernel),
            stride: pair(self.stride),
            padding: pair(self.padding),
            dilation: (usize::from(self.dilation[0]), usize::from(self.dilation[1])),
        }
    }
}

impl std::fmt::Display for PackedWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.unpack();
        write!(
            f,
            "kernel={}x{}, stride={}x{}, padding={}x{}, dilation={}x{}",
            w.kernel.0,
            w.kernel.1,
            w.stride.0,
            w.stride.1,
            w.padding.0,
            w.padding.1,
            w.dilation.0,
            w.dilation.1
        )
    }
}

fn window_of(args: Args, op: &str) -> Window2d {
    match args {
        Args::Window(w) => w.unpack(),
        _ => unreachable!("{op} node without its window"),
    }
}

/// im2col: every window of the input as a column. The gradient is folded back (summed into the
/// input positions each window read).
pub(crate) struct Unfold;

impl<T: Float> Op<T> for Unfold {
    fn name(&self) -> &'static str {
        "unfold"
    }
    fn rule(&self) -> &'static str {
        "copies input pixels into window columns: grad_x = fold(grad_out), each pixel summing the \
         gradients of every column entry it was copied to"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let window = window_of(cx.args, "unfold");
        let xs = cx.x().shape();
        [cx.need(0, || fold(cx.grad_out, (xs[2], xs[3]), window)), None]
    }
}

impl<T: Float> Primitive<T> for Unfold {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        cx.x().unfold(&window_of(cx.args, "unfold"))
    }
}

/// im2col of any operand (see [`Var::unfold`]); the window is checked by the caller.
#[track_caller]
fn unfold<T: Float, G: Operand<T>>(x: &G, window: Window2d) -> G {
    let args = Args::Window(PackedWindow::pack("unfold", &window));
    G::apply(&Unfold, args, None, &[x])
}

/// col2im: the adjoint of [`Unfold`], summing window columns into an image. The gradient is
/// unfolded.
pub(crate) struct Fold;

impl<T: Float> Op<T> for Fold {
    fn name(&self) -> &'static str {
        "fold"
    }
    fn rule(&self) -> &'static str {
        "sums window columns into pixels: grad_x = unfold(grad_out), each column entry reading the \
         gradient of its pixel"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let (_, window) = fold_args(cx.extra());
        [cx.need(0, || unfold(cx.grad_out, window)), None]
    }
}

impl<T: Float> Primitive<T> for Fold {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let (size, window) = fold_args(cx.extra());
        cx.x().fold(size, &window)
    }
}

/// Fold's arguments as [`Extra`] integers: the output size, then the window's kernel, stride,
/// padding and dilation.
fn fold_extra(size: (usize, usize), w: &Window2d) -> Extra {
    let pairs = [size, w.kernel, w.stride, w.padding, w.dilation];
    Extra::ints(&pairs.map(|(a, b)| [a, b]).concat())
}

fn fold_args(extra: &Extra) -> ((usize, usize), Window2d) {
    let pair = |i: usize| (extra.ints[2 * i], extra.ints[2 * i + 1]);
    let window = Window2d::new(pair(1))
        .stride(pair(2))
        .padding(pair(3))
        .dilation(pair(4));
    (pair(0), window)
}

/// col2im of any operand into `[N, C, size.0, size.1]` (see [`Var::fold`]).
#[track_caller]
fn fold<T: Float, G: Operand<T>>(x: &G, size: (usize, usize), window: Window2d) -> G {
    G::apply(&Fold, Args::None, Some(fold_extra(size, &window)), &[x])
}

/// Calls `f(x_index, column_index)` for every pair of an input pixel of `[n, c, h, w]` and the
/// entry of the `[n, c·kh·kw, oh·ow]` columns that copies it (padding reads nothing).
fn for_each_tap(dims: [usize; 4], win: &Window2d, (oh, ow): (usize, usize), mut f: impl FnMut(usize, usize)) {
    let [n, c, h, w] = dims;
    let (kh, kw) = win.kernel;
    let (sh, sw) = win.stride;
    let (ph, pw) = win.padding;
    let (dh, dw) = win.dilation;
    let l = oh * ow;
    for plane in 0..n * c {
        for i in 0..kh {
            for j in 0..kw {
                let row = (plane * kh + i) * kw + j;
                // The input column of output column ox is ox·sw + j·dw - pw; keep it in 0..w.
                let off = j * dw;
                let ox_lo = if pw > off { (pw - off).div_ceil(sw) } else { 0 };
                let ox_hi = if w + pw > off {
                    (w + pw - off).div_ceil(sw).min(ow)
                } else {
                    0
                };
                for oy in 0..oh {
                    let iy = oy * sh + i * dh;
                    if iy < ph || iy - ph >= h {
                        continue;
                    }
                    let x_row = (plane * h + iy - ph) * w;
                    let col_row = row * l + oy * ow;
                    for ox in ox_lo..ox_hi {
                        f(x_row + ox * sw + off - pw, col_row + ox);
                    }
                }
            }
        }
    }
}

/// `out = h` at the first maximum of `src` in each window: max pooling when `h = src`. The
/// gradient of `h` is placed back at those maxima; `src` only chooses positions (gradient 0).
pub(crate) struct GatherMax;

impl<T: Float> Op<T> for GatherMax {
    fn name(&self) -> &'static str {
        "max_pool2d"
    }
    fn rule(&self) -> &'static str {
        "out = x at the first maximum of each window: grad_x = grad_out placed at those maxima, \
         summed where windows overlap, 0 elsewhere"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [
            cx.need(0, || G::apply(&UnpoolMax, cx.args, None, &[cx.grad_out, cx.y()])),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for GatherMax {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        cx.x().gather_max(cx.inputs[1], &window_of(cx.args, "max_pool2d"))
    }
}

/// The adjoint of [`GatherMax`]: each value placed at the first maximum of `src` in its window
/// (zeros elsewhere, sums where windows overlap). The gradient is gathered back.
pub(crate) struct UnpoolMax;

impl<T: Float> Op<T> for UnpoolMax {
    fn name(&self) -> &'static str {
        "max_unpool2d"
    }
    fn rule(&self) -> &'static str {
        "places x at the maximum of each window: grad_x = grad_out read at those maxima"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [
            cx.need(0, || G::apply(&GatherMax, cx.args, None, &[cx.grad_out, cx.y()])),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for UnpoolMax {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        cx.x()
            .unpool_max(cx.inputs[1], &window_of(cx.args, "max_unpool2d"))
    }
}

/// For each window position over an `[n, c, h, w]` image `x`, the flat index of the first
/// maximum of its window in row-major tap order (NaN wins, as in PyTorch); taps in the padding
/// are skipped. Every window holds a pixel (padding at most half the kernel, checked).
fn window_argmax<T: Float>(x: &[T], dims: [usize; 4], win: &Window2d) -> Vec<usize> {
    let [n, c, h, w] = dims;
    let (oh, ow) = win
        .output_size((h, w))
        .expect("max_pool2d: window checked by the caller");
    let (kh, kw) = win.kernel;
    let (sh, sw) = win.stride;
    let (ph, pw) = win.padding;
    let (dh, dw) = win.dilation;
    // Window row oy covers kernel rows i_lo..i_hi inside the image (the others are padding).
    let rows: Vec<(usize, usize)> = (0..oh)
        .map(|oy| {
            let start = oy * sh; // kernel row i reads image row start + i·dh - ph
            let lo = if ph > start { (ph - start).div_ceil(dh) } else { 0 };
            let hi = if h + ph > start {
                (h + ph - start).div_ceil(dh).min(kh)
            } else {
                0
            };
            (lo, hi)
        })
        .collect();
    // Kernel column j is inside the image for window columns ox_lo..ox_hi.
    let cols: Vec<(usize, usize)> = (0..kw)
        .map(|j| {
            let off = j * dw; // window column ox reads image column ox·sw + off - pw
            let lo = if pw > off { (pw - off).div_ceil(sw) } else { 0 };
            let hi = if w + pw > off {
                (w + pw - off).div_ceil(sw).min(ow)
            } else {
                0
            };
            (lo, hi)
        })
        .collect();
    let mut args = vec![0; n * c * oh * ow];
    let mut seen = vec![false; ow];
    for plane in 0..n * c {
        let base = plane * h * w;
        for (oy, &(i_lo, i_hi)) in rows.iter().enumerate() {
            let best = &mut args[(plane * oh + oy) * ow..][..ow];
            seen.fill(false);
            // Taps in row-major kernel order, each over a whole row of windows: the windows are
            // independent, so the loop pipelines, and each window still meets its taps in
            // row-major order (the first maximum wins ties, as in PyTorch).
            for i in i_lo..i_hi {
                let row = base + (oy * sh + i * dh - ph) * w;
                for (j, &(ox_lo, ox_hi)) in cols.iter().enumerate() {
                    for ox in ox_lo..ox_hi {
                        let k = row + ox * sw + j * dw - pw;
                        let (v, b) = (x[k], x[best[ox]]);
                        // A NaN wins over numbers and then stays, so NaN propagates as in
                        // PyTorch. The choice is a bit mask, not a branch: on random data a
                        // branch here is mispredicted half the time.
                        let take = !seen[ox] | (((v > b) | v.is_nan()) & !b.is_nan());
                        let mask = usize::from(take).wrapping_neg();
                        best[ox] = (k & mask) | (best[ox] & !mask);
                        seen[ox] = true;
                    }
                }
            }
            assert!(
                seen.iter().all(|&s| s),
                "max_pool2d: a window with no pixel (padding is checked to prevent it)"
            );
        }
    }
    args
}

impl<T: Float> Tensor<T> {
    /// `self` (of `src`'s shape `[N, C, H, W]`) read at the first maximum of `src` in each
    /// window: `[N, C, oh, ow]`. Shapes are checked by the caller.
    pub(crate) fn gather_max(&self, src: &Tensor<T>, win: &Window2d) -> Tensor<T> {
        let s = src.shape();
        let (oh, ow) = win
            .output_size((s[2], s[3]))
            .expect("max_pool2d: window checked by the caller");
        let args = window_argmax(src.as_slice(), [s[0], s[1], s[2], s[3]], win);
        let h = self.as_slice();
        Tensor::from_exact_iter(
            Shape::from_slice(&[s[0], s[1], oh, ow]),
            args.iter().map(|&k| h[k]),
        )
    }

    /// The adjoint of [`Tensor::gather_max`]: `self` (`[N, C, oh, ow]`) placed at the first
    /// maximum of `src` in each window, in zeros of `src`'s shape (sums where windows overlap).
    pub(crate) fn unpool_max(&self, src: &Tensor<T>, win: &Window2d) -> Tensor<T> {
        let s = src.shape();
        let args = window_argmax(src.as_slice(), [s[0], s[1], s[2], s[3]], win);
        let g = self.as_slice();
        Tensor::build(Shape::from_slice(s), |out| {
            for (&k, &v) in args.iter().zip(g) {
                out[k] += v;
            }
        })
    }

    /// im2col of an `[N, C, H, W]` tensor: `[N, C·kh·kw, oh·ow]`, column `oy·ow + ox` holding
    /// the window at `(oy, ox)` (channel-major, then kernel row, then kernel column). The shape
    /// is checked by the caller.
    pub(crate) fn unfold(&self, win: &Window2d) -> Tensor<T> {
        let s = self.shape();
        let dims = [s[0], s[1], s[2], s[3]];
        let out_size = win
            .output_size((s[2], s[3]))
            .expect("unfold: window checked by the caller");
        let rows = s[1] * win.kernel.0 * win.kernel.1;
        let x = self.as_slice();
        Tensor::build(Shape::from_slice(&[s[0], rows, out_size.0 * out_size.1]), |out| {
            for_each_tap(dims, win, out_size, |xi, ci| out[ci] = x[xi])
        })
    }

    /// col2im: the adjoint of [`Tensor::unfold`], summing `[N, C·kh·kw, oh·ow]` columns into an
    /// `[N, C, size.0, size.1]` image. The shape is checked by the caller.
    pub(crate) fn fold(&self, size: (usize, usize), win: &Window2d) -> Tensor<T> {
        let s = self.shape();
        let c = s[1] / (win.kernel.0 * win.kernel.1);
        let dims = [s[0], c, size.0, size.1];
        let out_size = win.output_size(size).expect("fold: window checked by the caller");
        let cols = self.as_slice();
        Tensor::build(Shape::from_slice(&dims), |out| {
            for_each_tap(dims, win, out_size, |xi, ci| out[xi] += cols[ci])
        })
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Every sliding window of an `[N, C, H, W]` value as a column (im2col, PyTorch's
    /// `torch.nn.functional.unfold`): the result is `[N, C·kh·kw, L]` with `L = oh·ow` window
    /// positions in row-major order, and row `(c·kh + i)·kw + j` holding tap `(i, j)` of
    /// channel `c` (0 where the tap falls in the padding). Linear; its adjoint is [`Var::fold`].
    ///
    /// # Panics
    /// If the value is not rank 4, a kernel size, stride or dilation is 0, the dilated kernel
    /// is larger than the padded input, or a window size does not fit the node's small
    /// arguments (16 bits; 8 bits for dilation).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Window2d};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_fn(&[1, 1, 3, 3], |i| i as f64)); // 0 1 2 / 3 4 5 / 6 7 8
    /// let cols = x.unfold(Window2d::new((2, 2)));
    /// assert_eq!(cols.shape(), vec![1, 4, 4]);
    /// assert_eq!(cols.value().to_vec()[..4], [0., 1., 3., 4.]); // tap (0, 0) of the 4 windows
    /// // Each pixel receives one gradient per window that reads it.
    /// assert_eq!(cols.sum().backward()[x].to_vec(), vec![1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    /// ```
    #[track_caller]
    pub fn unfold(self, window: Window2d) -> Var<'t, T> {
        window.check("unfold", &self.shape());
        unfold(&self, window)
    }

    /// Sums `[N, C·kh·kw, L]` window columns into an `[N, C, H, W]` image with
    /// `(H, W) = output_size` (col2im, PyTorch's `torch.nn.functional.fold`): the adjoint of
    /// [`Var::unfold`], so `<unfold(x), y> = <x, fold(y)>`. Entries that fall in the padding
    /// are dropped.
    ///
    /// # Panics
    /// If the value is not rank 3, its second axis is not a multiple of `kh·kw`, its last axis
    /// is not the number of window positions over `output_size`, or the window is invalid (as
    /// for [`Var::unfold`]).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Window2d};
    /// let tape = Tape::<f64>::new();
    /// let cols = tape.var(Tensor::ones(&[1, 4, 4]));
    /// let image = cols.fold((3, 3), Window2d::new((2, 2)));
    /// assert_eq!(image.value().to_vec(), vec![1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    /// ```
    #[track_caller]
    pub fn fold(self, output_size: (usize, usize), window: Window2d) -> Var<'t, T> {
        let shape = self.shape();
        assert!(
            shape.len() == 3,
            "tapegrad: fold: needs [N, C·kh·kw, L] columns, got shape {shape:?}"
        );
        let taps = window.kernel.0 * window.kernel.1;
        assert!(
            taps > 0 && shape[1].is_multiple_of(taps),
            "tapegrad: fold: axis 1 of shape {shape:?} is not a multiple of the kernel's {:?} taps",
            window.kernel
        );
        let image = [shape[0], shape[1] / taps, output_size.0, output_size.1];
        let (oh, ow) = window.check("fold", &image);
        assert!(
            shape[2] == oh * ow,
            "tapegrad: fold: columns of shape {shape:?} do not match the {oh}x{ow} = {} window \
             positions over an output of {output_size:?}",
            oh * ow
        );
        PackedWindow::pack("fold", &window); // the same size limits as unfold's
        fold(&self, output_size, window)
    }

    /// 2-D convolution (cross-correlation, as in PyTorch's `torch.nn.functional.conv2d`) of an
    /// `[N, C_in, H, W]` input with a `[C_out, C_in, kh, kw]` weight and an optional `[C_out]`
    /// bias: an `[N, C_out, oh, ow]` result.
    ///
    /// Computed as `unfold` (im2col) followed by one matrix product per image,
    /// `[C_out, C_in·kh·kw] @ [C_in·kh·kw, oh·ow]`, on the GEMM kernel; its gradients are the
    /// transposed products and `fold`, and are differentiable again.
    ///
    /// # Panics
    /// If the input or the weight is not rank 4, their channel counts differ, the bias is not
    /// `[C_out]`, a stride is 0, the kernel is larger than the padded input, or the vars live
    /// on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_fn(&[1, 1, 3, 3], |i| i as f64));
    /// let w = tape.var(Tensor::from_vec(vec![1., 0., 0., -1.], &[1, 1, 2, 2])); // x[i,j] - x[i+1,j+1]
    /// let b = tape.var(Tensor::from_vec(vec![10.], &[1]));
    /// let y = x.conv2d(&w, Some(&b), (1, 1), (0, 0));
    /// assert_eq!(y.shape(), vec![1, 1, 2, 2]);
    /// assert_eq!(y.value().to_vec(), vec![6., 6., 6., 6.]);
    /// let grads = y.sum().backward();
    /// assert_eq!(grads[b].to_vec(), vec![4.]);
    /// assert_eq!(grads[w].to_vec(), vec![8., 12., 20., 24.]); // sums of each tap's pixels
    /// ```
    #[track_caller]
    pub fn conv2d(
        self,
        weight: &Var<'t, T>,
        bias: Option<&Var<'t, T>>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var<'t, T> {
        let (xs, ws) = self.check_conv_operands(
            "conv2d",
            (4, "[N, C_in, H, W]", "[C_out, C_in, kh, kw]"),
            weight,
            bias,
        );
        let c_out = ws[0];
        let window = Window2d::new((ws[2], ws[3])).stride(stride).padding(padding);
        let (oh, ow) = window.check("conv2d", &xs);
        let cols = self.unfold(window);
        let y = weight
            .reshape(&[c_out, ws[1] * ws[2] * ws[3]])
            .matmul(&cols)
            .reshape(&[xs[0], c_out, oh, ow]);
        match bias {
            Some(b) => y + b.reshape(&[1, c_out, 1, 1]),
            None => y,
        }
    }

    /// Checks a convolution's operands (one tape; input and weight of `rank`, laid out as
    /// `layouts`; matching channels; a bias `[C_out]`) and returns the input's and the weight's
    /// shapes.
    #[track_caller]
    fn check_conv_operands(
        self,
        op: &str,
        (rank, input_layout, weight_layout): (usize, &str, &str),
        weight: &Var<'t, T>,
        bias: Option<&Var<'t, T>>,
    ) -> (Vec<usize>, Vec<usize>) {
        self.check_same_tape(*weight, op);
        if let Some(b) = bias {
            self.check_same_tape(*b, op);
        }
        let (xs, ws) = (self.shape(), weight.shape());
        assert!(
            xs.len() == rank && ws.len() == rank,
            "tapegrad: {op}: needs an {input_layout} input and a {weight_layout} weight, got \
             shapes {xs:?} and {ws:?}"
        );
        assert!(
            xs[1] == ws[1],
            "tapegrad: {op}: the input has {} channels but the weight expects {} \
             (input shape {xs:?}, weight shape {ws:?})",
            xs[1],
            ws[1]
        );
        if let Some(b) = bias {
            let bs = b.shape();
            assert!(
                bs == [ws[0]],
                "tapegrad: {op}: bias shape {bs:?} does not match weight shape {ws:?} (want [{}])",
                ws[0]
            );
        }
        (xs, ws)
    }

    /// 1-D convolution (cross-correlation, as PyTorch's `torch.nn.functional.conv1d`) of an
    /// `[N, C_in, L]` input with a `[C_out, C_in, k]` weight and an optional `[C_out]` bias:
    /// an `[N, C_out, oL]` result with `oL = (L + 2·padding - dilation·(k - 1) - 1) / stride + 1`.
    ///
    /// The 2-D convolution's path with a height of 1: `unfold` of the `[N, C_in, 1, L]` view
    /// (im2col over one row, no extra work) and one matrix product per sequence; the gradients
    /// are those of `unfold` and the product, differentiable again.
    ///
    /// # Panics
    /// If the input or the weight is not rank 3, their channel counts differ, the bias is not
    /// `[C_out]`, a kernel size, stride or dilation is 0, the dilated kernel is larger than the
    /// padded input, dilation is above 255 or another size above 65535, or the vars live on
    /// different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5.], &[1, 1, 5]));
    /// let w = tape.var(Tensor::from_vec(vec![1., -1.], &[1, 1, 2])); // x[i] - x[i + d]
    /// let y = x.conv1d(&w, None, 1, 0, 2); // dilation 2
    /// assert_eq!(y.value().to_vec(), vec![-2., -2., -2.]);
    /// let y = x.conv1d(&w, None, 2, 1, 1); // stride 2, padding 1: [0 1 2 3 4 5 0]
    /// assert_eq!(y.value().to_vec(), vec![-1., -1., -1.]);
    /// assert_eq!(y.sum().backward()[w].to_vec(), vec![6., 9.]);
    /// ```
    #[track_caller]
    pub fn conv1d(
        self,
        weight: &Var<'t, T>,
        bias: Option<&Var<'t, T>>,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Var<'t, T> {
        let (xs, ws) =
            self.check_conv_operands("conv1d", (3, "[N, C_in, L]", "[C_out, C_in, k]"), weight, bias);
        let c_out = ws[0];
        let image = [xs[0], xs[1], 1, xs[2]];
        let window = Window2d::new((1, ws[2]))
            .stride((1, stride))
            .padding((0, padding))
            .dilation((1, dilation));
        window.check("conv1d", &image);
        PackedWindow::pack("conv1d", &window);
        let cols = unfold(&self.reshape(&image), window);
        let y = weight.reshape(&[c_out, ws[1] * ws[2]]).matmul(&cols);
        match bias {
            Some(b) => y + b.reshape(&[1, c_out, 1]),
            None => y,
        }
    }

    /// 2-D max pooling of an `[N, C, H, W]` value (PyTorch's
    /// `torch.nn.functional.max_pool2d(x, kernel, stride, padding)`): the maximum of each
    /// `kernel` window, windows `stride` apart, the input padded with `-inf`. The gradient goes
    /// to the first maximum of each window (in row-major window order, as in PyTorch), and
    /// sums where windows overlap.
    ///
    /// Its backward places the gradient at the maxima, and that rule's backward reads it back
    /// from them, so it is differentiable to any order (second derivatives are 0, as for
    /// [`Var::max_axis`]).
    ///
    /// # Panics
    /// If the value is not rank 4, a kernel size or stride is 0, the kernel is larger than the
    /// padded input, or the padding is more than half the kernel (as in PyTorch: every window
    /// must see a real pixel).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(
    ///     vec![1., 2., 5., 0., 3., 4., 1., 1., 0., 0., 2., 7., 9., 0., 3., 1.],
    ///     &[1, 1, 4, 4],
    /// ));
    /// let y = x.max_pool2d((2, 2), (2, 2), (0, 0));
    /// assert_eq!(y.value().to_vec(), vec![4., 5., 9., 7.]);
    /// let g = y.sum().backward()[x].to_vec();
    /// assert_eq!(g, vec![0., 0., 1., 0., 0., 1., 0., 0., 0., 0., 0., 1., 1., 0., 0., 0.]);
    /// ```
    #[track_caller]
    pub fn max_pool2d(
        self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var<'t, T> {
        let xs = self.shape();
        let window = Window2d::new(kernel).stride(stride).padding(padding);
        window.check("max_pool2d", &xs);
        assert!(
            2 * padding.0 <= kernel.0 && 2 * padding.1 <= kernel.1,
            "tapegrad: max_pool2d: padding {padding:?} is more than half the kernel {kernel:?} \
             (input shape {xs:?})"
        );
        let args = Args::Window(PackedWindow::pack("max_pool2d", &window));
        Var::record_op(&GatherMax, args, None, &[self, self])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(shape: &[usize], salt: usize) -> Tensor<f64> {
        Tensor::from_fn(shape, |i| {
            (((i + salt) * 2_654_435_761) % 1000) as f64 / 500.0 - 1.0
        })
    }

    fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
        assert_eq!(a.shape(), b.shape());
        a.as_slice().iter().zip(b.as_slice()).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn unpool_max_is_the_adjoint_of_gather_max() {
        // <gather_max(h, src), g> = <h, unpool_max(g, src)>, with overlapping windows and padding.
        for (k, win) in [
            Window2d::new((2, 2)).stride((2, 2)),
            Window2d::new((3, 3)).stride((1, 2)).padding((1, 1)),
            Window2d::new((2, 3)).stride((1, 1)).padding((1, 0)),
        ]
        .into_iter()
        .enumerate()
        {
            let src = pseudo_random(&[2, 3, 6, 7], k);
            let h = pseudo_random(&[2, 3, 6, 7], 50 + k);
            let pooled = h.gather_max(&src, &win);
            let g = pseudo_random(pooled.shape(), 100 + k);
            let (lhs, rhs) = (dot(&pooled, &g), dot(&h, &g.unpool_max(&src, &win)));
            assert!((lhs - rhs).abs() < 1e-12, "{win:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn gather_max_skips_the_padding_and_takes_the_first_maximum() {
        let x = Tensor::<f64>::from_vec(vec![-5., -5., -7., -5.], &[1, 1, 2, 2]);
        // With padding 1 and a 2x2 kernel, the corner windows see one pixel each (not a 0 pad).
        let win = Window2d::new((2, 2)).stride((1, 1)).padding((1, 1));
        let pooled = x.gather_max(&x, &win);
        assert_eq!(pooled.to_vec(), vec![-5., -5., -5., -5., -5., -5., -7., -5., -5.]);
        // Ties go to the first maximum in row-major window order, as in PyTorch.
        let one = Tensor::<f64>::ones(&[1, 1, 1, 1]);
        let full = Window2d::new((2, 2)).stride((2, 2));
        assert_eq!(one.unpool_max(&x, &full).to_vec(), vec![1., 0., 0., 0.]);
    }
}
