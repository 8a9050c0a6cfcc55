//! Every built-in module is `Send + Sync` (issue 18), so that a model can move to a training
//! thread or be shared with an evaluation thread: `Sequential` included, whose boxed modules
//! are `Send + Sync` too, and the layers with a dropout generator (a mutex, not a `RefCell`).

use tapegrad::nn::*;
use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn every_built_in_module_is_send_and_sync() {
    assert_send_sync::<Linear<f32>>();
    assert_send_sync::<Mlp<f64>>();
    assert_send_sync::<Sequential<f32>>();
    assert_send_sync::<Activation>();
    assert_send_sync::<Conv1d<f32>>();
    assert_send_sync::<Conv2d<f32>>();
    assert_send_sync::<MaxPool2d>();
    assert_send_sync::<Flatten>();
    assert_send_sync::<Dropout<f32>>();
    assert_send_sync::<Embedding<f32>>();
    assert_send_sync::<LayerNorm<f32>>();
    assert_send_sync::<BatchNorm1d<f32>>();
    assert_send_sync::<RmsNorm<f32>>();
    assert_send_sync::<Rnn<f32>>();
    assert_send_sync::<Lstm<f32>>();
    assert_send_sync::<Gru<f32>>();
    assert_send_sync::<RnnCell<f32>>();
    assert_send_sync::<LstmCell<f32>>();
    assert_send_sync::<GruCell<f32>>();
    assert_send_sync::<MultiheadAttention<f32>>();
    assert_send_sync::<TransformerEncoderLayer<f32>>();
    assert_send_sync::<TransformerEncoder<f32>>();
}

#[test]
fn a_sequential_model_trains_on_another_thread() {
    let mut rng = StdRng::seed_from_u64(3);
    let net = Sequential::<f32>::new()
        .with(Linear::new(2, 8, &mut rng))
        .with(Activation::Tanh)
        .with(Dropout::new(0.1, 7))
        .with(Linear::new(8, 1, &mut rng));
    let x = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], &[2, 2]);
    let y = Tensor::from_vec(vec![1.0, -1.0], &[2, 1]);
    let loss = std::thread::spawn(move || {
        let mut opt = Adam::new(
            net.parameters(),
            AdamConfig {
                lr: 0.05,
                ..Default::default()
            },
        );
        let mut tape = Tape::new();
        let mut last = f32::INFINITY;
        for _ in 0..50 {
            tape.reset();
            let out = net.forward(&tape, tape.constant(x.clone()));
            let l = loss::mse(out, tape.constant(y.clone()));
            last = l.item();
            let grads = l.backward();
            tape.reset();
            opt.step(&grads);
        }
        last
    })
    .join()
    .expect("the training thread finishes");
    assert!(loss < 0.5, "loss {loss}");
}
