//! [`Generator`]: a module's own random numbers (dropout masks), whose exact state a checkpoint
//! keeps, so that a resumed run draws the same masks as an uninterrupted one.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use rand::rngs::ChaCha12Rng;
use rand::{RngExt, SeedableRng};

use crate::{Error, Float, Tensor};

/// The random generator of a layer that draws numbers in its forward pass ([`Dropout`](super::Dropout),
/// the dropout inside [`MultiheadAttention`](super::MultiheadAttention),
/// [`TransformerEncoderLayer`](super::TransformerEncoderLayer) and between the layers of
/// [`Lstm`](super::Lstm), [`Gru`](super::Gru) and [`Rnn`](super::Rnn)).
///
/// It is ChaCha with 12 rounds (the algorithm behind rand's `StdRng`, named so that the stream
/// cannot change under us), seeded at construction. Its whole state is a seed, a stream number
/// and a position in the stream: [`state`](Generator::state) reads it,
/// [`set_state`](Generator::set_state) restores it, and [`Module::named_generators`](super::Module::named_generators)
/// lists a model's generators so that [`io::save`](crate::io::save) writes them with the
/// parameters and [`io::load`](crate::io::load) restores them.
///
/// A mutex (not a `RefCell`) holds the generator, so that layers are `Sync` and can move to a
/// training thread; forward passes take `&self`.
///
/// ```
/// use tapegrad::nn::Generator;
/// let generator = Generator::new(7);
/// let saved = generator.state();
/// let first: tapegrad::Tensor<f32> = generator.dropout_mask(&[4, 4], 0.5);
/// generator.set_state(&saved);
/// assert_eq!(generator.dropout_mask::<f32>(&[4, 4], 0.5), first);
/// ```
#[derive(Debug)]
pub struct Generator {
    rng: Mutex<ChaCha12Rng>,
}

impl Generator {
    /// A generator seeded with `seed` (the same stream as `StdRng::seed_from_u64(seed)` today).
    ///
    /// ```
    /// use tapegrad::nn::Generator;
    /// assert_eq!(Generator::new(1).state(), Generator::new(1).state());
    /// assert_ne!(Generator::new(1).state(), Generator::new(2).state());
    /// ```
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Mutex::new(ChaCha12Rng::seed_from_u64(seed)),
        }
    }

    /// The generator's exact state: restoring it with [`set_state`](Generator::set_state) makes
    /// it draw the same numbers again.
    ///
    /// ```
    /// use tapegrad::nn::Generator;
    /// let generator = Generator::new(3);
    /// let before = generator.state();
    /// let _ = generator.dropout_mask::<f64>(&[10], 0.1);
    /// assert_ne!(generator.state(), before);
    /// ```
    pub fn state(&self) -> GeneratorState {
        let rng = self.lock();
        GeneratorState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// Puts the generator in `state` (from [`state`](Generator::state), possibly of another
    /// generator, or parsed from a checkpoint).
    ///
    /// ```
    /// use tapegrad::nn::Generator;
    /// let (a, b) = (Generator::new(1), Generator::new(2));
    /// b.set_state(&a.state());
    /// assert_eq!(a.dropout_mask::<f32>(&[8], 0.5), b.dropout_mask::<f32>(&[8], 0.5));
    /// ```
    pub fn set_state(&self, state: &GeneratorState) {
        let mut rng = ChaCha12Rng::from_seed(state.seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(state.word_pos);
        *self.lock() = rng;
    }

    /// A dropout mask of `shape`: each element `0` with probability `p`, else `1/(1-p)`, so that
    /// multiplying by it keeps the expected value (PyTorch's scaling).
    ///
    /// ```
    /// use tapegrad::nn::Generator;
    /// let mask = Generator::new(0).dropout_mask::<f64>(&[1000], 0.25);
    /// assert!(mask.as_slice().iter().all(|&m| m == 0.0 || m == 1.0 / 0.75));
    /// ```
    pub fn dropout_mask<T: Float>(&self, shape: &[usize], p: f64) -> Tensor<T> {
        let keep = T::from_f64(1.0 / (1.0 - p));
        let mut rng = self.lock();
        Tensor::from_fn(shape, |_| if rng.random::<f64>() < p { T::ZERO } else { keep })
    }

    /// A poisoned lock still holds a usable generator (a panic between two draws leaves no
    /// broken invariant), so it is taken over rather than propagated.
    fn lock(&self) -> MutexGuard<'_, ChaCha12Rng> {
        self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for Generator {
    /// A generator in the same state, drawing the same numbers from here on.
    fn clone(&self) -> Self {
        let copy = Generator::new(0);
        copy.set_state(&self.state());
        copy
    }
}

/// The exact state of a [`Generator`]: ChaCha12's 32-byte seed, its stream number and its
/// position in the stream (in 32-bit words).
///
/// Its text form, which checkpoints store, is `chacha12:<seed in 64 hex digits>:<stream>:<position>`;
/// [`FromStr`] reads it back and rejects anything else with [`Error::InvalidData`].
///
/// ```
/// use tapegrad::nn::{Generator, GeneratorState};
/// let state = Generator::new(5).state();
/// let text = state.to_string();
/// assert!(text.starts_with("chacha12:"));
/// assert_eq!(text.parse::<GeneratorState>().unwrap(), state);
/// assert!("chacha12:zz:0:0".parse::<GeneratorState>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorState {
    seed: [u8; 32],
    stream: u64,
    word_pos: u128,
}

/// ChaCha's position is a 68-bit number of words (a 64-bit block counter, 16 words a block).
const WORD_POS_LIMIT: u128 = 1 << 68;

impl fmt::Display for GeneratorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chacha12:")?;
        for byte in self.seed {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ":{}:{}", self.stream, self.word_pos)
    }
}

impl FromStr for GeneratorState {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let excerpt: String = text.chars().take(60).collect();
        let invalid = |why: &str| Error::InvalidData {
            detail: format!(
                "generator state `{excerpt}`{}: {why} (expected `chacha12:<64 hex digits>:<stream>:<position>`)",
                if excerpt.len() < text.len() { "..." } else { "" }
            ),
        };
        let mut fields = text.split(':');
        if fields.next() != Some("chacha12") {
            return Err(invalid("not a chacha12 state"));
        }
        let (Some(hex), Some(stream), Some(word_pos), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(invalid("not four fields"));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("the seed is not 64 hex digits"));
        }
        let mut seed = [0u8; 32];
        for (byte, pair) in seed.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            // Two ASCII hex digits, checked above.
            let digits = std::str::from_utf8(pair).map_err(|_| invalid("the seed is not hex"))?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| invalid("the seed is not hex"))?;
        }
        let stream = stream
            .parse::<u64>()
            .map_err(|_| invalid("the stream is not an unsigned 64-bit number"))?;
        let word_pos = word_pos
            .parse::<u128>()
            .ok()
            .filter(|&w| w < WORD_POS_LIMIT)
            .ok_or_else(|| invalid("the position is not a number below 2^68"))?;
        Ok(GeneratorState {
            seed,
            stream,
            word_pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_state_continues_mid_block() {
        // Odd numbers of draws leave the generator inside a buffered block, where the position
        // is not a multiple of a block: the restore must land on the same word.
        let g = Generator::new(11);
        for draws in [1usize, 3, 17, 64, 129] {
            let _ = g.dropout_mask::<f32>(&[draws], 0.3);
            let saved = g.state();
            let expected: Tensor<f32> = g.dropout_mask(&[50], 0.3);
            let other = Generator::new(99);
            other.set_state(&saved.to_string().parse().unwrap());
            assert_eq!(
                other.dropout_mask::<f32>(&[50], 0.3),
                expected,
                "after {draws} draws"
            );
        }
    }

    #[test]
    fn the_stream_matches_std_rng() {
        use rand::rngs::StdRng;
        let mut std = StdRng::seed_from_u64(42);
        let g = Generator::new(42);
        let ours = g.dropout_mask::<f64>(&[200], 0.5);
        let theirs = Tensor::<f64>::from_fn(&[200], |_| if std.random::<f64>() < 0.5 { 0.0 } else { 2.0 });
        assert_eq!(ours, theirs);
    }

    #[test]
    fn malformed_states_are_rejected() {
        let good = Generator::new(1).state().to_string();
        let hex = &good["chacha12:".len()..good.len() - ":0:0".len()];
        for bad in [
            "",
            "chacha8:00:0:0",
            "chacha12",
            &format!("chacha12:{hex}:0"),
            &format!("chacha12:{hex}:0:0:0"),
            &format!("chacha12:{}:0:0", &hex[..62]),
            &format!("chacha12:{}é:0:0", &hex[..62]),
            &format!("chacha12:{hex}:-1:0"),
            &format!("chacha12:{hex}:0:{}", 1u128 << 68),
            &format!("chacha12:{hex}:18446744073709551616:0"),
        ] {
            let err = bad.parse::<GeneratorState>().unwrap_err();
            assert!(matches!(err, Error::InvalidData { .. }), "{bad}: {err}");
        }
        let long = "x".repeat(10_000);
        assert!(long.parse::<GeneratorState>().unwrap_err().to_string().len() < 250);
    }
}
