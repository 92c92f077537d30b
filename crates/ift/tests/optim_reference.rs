//! Optimizers, learning-rate schedules and gradient clipping against PyTorch 2.15 and
//! transformers 5.23, whose values `scripts/reference/optim_reference.py` wrote into
//! `tests/fixtures/optim/` (versions in each file's metadata), plus save → load → continue.
//!
//! Tolerance: 1e-6 relative + 1e-7 absolute on f32 parameters. The update is the same sequence
//! of f32 operations as torch's, but candle multiplies by a reciprocal where torch divides and
//! rounds lerp/addcmul intermediates separately, so results differ in the last bits (observed
//! over the 10 steps: at most 1.2e-7 absolute, one ulp of a parameter between 1 and 2).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use ift::train::{
    clip_grad_norm, LrSchedule, OptimError, Optimizer, OptimizerConfig, OptimizerKind,
    ScheduleConfig, ScheduleKind,
};

const PARAMS: [&str; 3] = ["a", "b", "c"];
const STEPS: usize = 10;
/// Parameter tolerance, see the module doc.
const RTOL: f32 = 1e-6;
const ATOL: f32 = 1e-7;

struct Fixture {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/optim", name]
            .iter()
            .collect();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap_or_default();
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        Self { tensors, meta }
    }

    fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no `{key}`"))
    }

    fn num(&self, key: &str) -> f64 {
        self.meta[key].parse().unwrap()
    }

    fn lrs(&self) -> Vec<f64> {
        self.get("lr").to_vec1().unwrap()
    }

    /// Fresh vars holding the fixture's initial parameters.
    fn init_vars(&self) -> Vec<(String, Var)> {
        let var = |p: &str| Var::from_tensor(&self.get(&format!("init.{p}")).copy().unwrap());
        PARAMS
            .iter()
            .map(|p| (p.to_string(), var(p).unwrap()))
            .collect()
    }

    /// Step `k`'s gradients; a parameter the reference gave no gradient is absent.
    fn grads(&self, k: usize, vars: &[(String, Var)]) -> GradStore {
        let mut grads = GradStore::default();
        for (p, var) in vars {
            if let Some(g) = self.tensors.get(&format!("grad.{k}.{p}")) {
                grads.insert(var.as_tensor(), g.clone());
            }
        }
        grads
    }

    /// The optimizer and schedule the reference ran, read back from the metadata.
    fn setup(&self) -> (OptimizerConfig, LrSchedule) {
        let mut config = OptimizerConfig {
            kind: serde_json::from_value(self.meta["optimizer"].clone().into()).unwrap(),
            weight_decay: self.num("weight_decay"),
            ..OptimizerConfig::default()
        };
        for (key, field) in [
            ("beta1", &mut config.beta1),
            ("beta2", &mut config.beta2),
            ("eps", &mut config.eps),
            ("alpha", &mut config.alpha),
            ("momentum", &mut config.momentum),
        ] {
            if self.meta.contains_key(key) {
                *field = self.num(key);
            }
        }
        if config.kind == OptimizerKind::Sgd && !self.meta.contains_key("momentum") {
            config.momentum = 0.0;
        }
        let schedule = ScheduleConfig {
            kind: serde_json::from_value(self.meta["schedule"].clone().into()).unwrap(),
            warmup_steps: self.num("warmup_steps") as u64,
            warmup_ratio: 0.0,
        };
        let schedule =
            LrSchedule::new(&schedule, self.num("lr"), self.num("total_steps") as u64).unwrap();
        (config, schedule)
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f32, atol: f32) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    for (i, (g, w)) in values(got).into_iter().zip(values(want)).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs();
        assert!(
            ok,
            "{what}[{i}]: got {g:e}, want {w:e} (diff {:e})",
            (g - w).abs()
        );
    }
}

fn trajectory(file: &str) {
    let fx = Fixture::load(file);
    let (config, schedule) = fx.setup();
    let vars = fx.init_vars();
    let mut opt = Optimizer::new(config, vars.clone()).unwrap();
    for (k, lr) in fx.lrs().into_iter().enumerate() {
        // The schedule must produce the very rate torch's LambdaLR gave the optimizer.
        let ours = schedule.lr(k as u64);
        assert!(
            (ours - lr).abs() <= 1e-12 * lr.abs(),
            "{file} lr[{k}]: {ours} vs {lr}"
        );
        opt.step(&fx.grads(k, &vars), lr).unwrap();
        for (p, var) in &vars {
            let want = fx.get(&format!("param.{k}.{p}"));
            assert_close(
                &format!("{file} step {k} {p}"),
                var.as_tensor(),
                want,
                RTOL,
                ATOL,
            );
        }
    }
    // Torch's own state after the last step, under the same names.
    let state: HashMap<String, Tensor> = opt.state_tensors().unwrap().into_iter().collect();
    assert_eq!(state["step"].to_scalar::<i64>().unwrap(), STEPS as i64);
    for (key, want) in fx
        .tensors
        .iter()
        .filter_map(|(k, t)| Some((k.strip_prefix("state.")?, t)))
    {
        let got = state
            .get(key)
            .unwrap_or_else(|| panic!("{file}: no state `{key}`"));
        if key.starts_with("step.") {
            assert_eq!(
                got.to_scalar::<i64>().unwrap(),
                want.to_scalar::<i64>().unwrap(),
                "{key}"
            );
        } else {
            assert_close(&format!("{file} state {key}"), got, want, RTOL, ATOL);
        }
    }
}

#[test]
fn adamw_matches_torch() {
    trajectory("adamw.safetensors");
}

#[test]
fn rmsprop_matches_torch() {
    trajectory("rmsprop.safetensors");
}

#[test]
fn sgd_matches_torch() {
    trajectory("sgd.safetensors");
}

/// Runs steps `range` of the fixture's gradient sequence at its learning rates.
fn run(opt: &mut Optimizer, fx: &Fixture, vars: &[(String, Var)], range: std::ops::Range<usize>) {
    let lrs = fx.lrs();
    for k in range {
        opt.step(&fx.grads(k, vars), lrs[k]).unwrap();
    }
}

fn snapshot(vars: &[(String, Var)]) -> Vec<Vec<f32>> {
    vars.iter().map(|(_, v)| values(v.as_tensor())).collect()
}

/// Saving after 4 steps (parameter `c` has then missed step 3, so its own step count lags the
/// global one), loading into a fresh optimizer and finishing must give the uninterrupted run's
/// parameters bit for bit.
#[test]
fn save_load_continue_is_bit_identical() {
    for file in [
        "adamw.safetensors",
        "rmsprop.safetensors",
        "sgd.safetensors",
    ] {
        let fx = Fixture::load(file);
        let (config, _) = fx.setup();

        let whole = fx.init_vars();
        let mut opt = Optimizer::new(config.clone(), whole.clone()).unwrap();
        run(&mut opt, &fx, &whole, 0..STEPS);

        let first = fx.init_vars();
        let mut opt = Optimizer::new(config.clone(), first.clone()).unwrap();
        run(&mut opt, &fx, &first, 0..4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        let state: HashMap<String, Tensor> = opt.state_tensors().unwrap().into_iter().collect();
        candle_core::safetensors::save(&state, &path).unwrap();
        drop(opt);

        let resumed: Vec<(String, Var)> = first
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap(),
                )
            })
            .collect();
        let mut opt = Optimizer::new(config, resumed.clone()).unwrap();
        opt.load_state(&candle_core::safetensors::load(&path, &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(opt.steps(), 4);
        run(&mut opt, &fx, &resumed, 4..STEPS);
        assert_eq!(snapshot(&resumed), snapshot(&whole), "{file}");
    }
}

#[test]
fn load_state_rejects_state_that_does_not_fit() {
    let fx = Fixture::load("adamw.safetensors");
    let (config, _) = fx.setup();
    let vars = fx.init_vars();
    let mut opt = Optimizer::new(config.clone(), vars.clone()).unwrap();
    run(&mut opt, &fx, &vars, 0..2);
    let state: HashMap<String, Tensor> = opt.state_tensors().unwrap().into_iter().collect();
    let fresh = || Optimizer::new(config.clone(), fx.init_vars()).unwrap();
    let expect_bad = |state: &HashMap<String, Tensor>, needle: &str| match fresh().load_state(state)
    {
        Err(OptimError::BadState(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected BadState mentioning {needle}, got {other:?}"),
    };
    assert!(fresh().load_state(&state).is_ok());

    let mut renamed = state.clone();
    let t = renamed.remove("exp_avg.a").unwrap();
    renamed.insert("exp_avg.z".into(), t);
    expect_bad(&renamed, "exp_avg.a");

    let mut extra = state.clone();
    extra.insert(
        "exp_avg.z".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    expect_bad(&extra, "exp_avg.z");

    let mut reshaped = state.clone();
    reshaped.insert(
        "exp_avg_sq.b".into(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    expect_bad(&reshaped, "shape");

    // RMSprop state offered to AdamW: the buffer names differ.
    let mut rms = Optimizer::new(
        OptimizerConfig {
            kind: OptimizerKind::RmsProp,
            ..config.clone()
        },
        fx.init_vars(),
    )
    .unwrap();
    rms.step(&fx.grads(0, rms.vars()), 0.1).unwrap();
    let rms_state = rms.state_tensors().unwrap().into_iter().collect();
    expect_bad(&rms_state, "exp_avg");
}

#[test]
fn optimizer_rejects_bad_settings() {
    let vars = Fixture::load("sgd.safetensors").init_vars();
    let with = |c: OptimizerConfig| Optimizer::new(c, vars.clone());
    assert!(matches!(
        with(OptimizerConfig {
            beta2: 1.0,
            ..Default::default()
        }),
        Err(OptimError::InvalidConfig(_))
    ));
    assert!(with(OptimizerConfig {
        weight_decay: -0.1,
        ..Default::default()
    })
    .is_err());
    let twice = vec![vars[0].clone(), vars[0].clone()];
    assert!(matches!(
        Optimizer::new(OptimizerConfig::default(), twice),
        Err(OptimError::DuplicateParam(_))
    ));
    let mut opt = with(OptimizerConfig::default()).unwrap();
    assert!(matches!(
        opt.step(&GradStore::default(), f64::NAN),
        Err(OptimError::InvalidLr(_))
    ));
}

#[test]
fn optimizer_config_reads_lowercase_kinds_and_rejects_unknown_keys() {
    let c: OptimizerConfig = serde_json::from_str(r#"{"kind": "adamw"}"#).unwrap();
    assert_eq!(
        c,
        OptimizerConfig {
            kind: OptimizerKind::AdamW,
            ..OptimizerConfig::default()
        }
    );
    for (name, kind) in [
        ("rmsprop", OptimizerKind::RmsProp),
        ("sgd", OptimizerKind::Sgd),
    ] {
        assert_eq!(
            serde_json::from_value::<OptimizerKind>(name.into()).unwrap(),
            kind
        );
    }
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"lr": 1.0}"#).is_err());
    assert!(serde_json::from_str::<OptimizerKind>(r#""AdamW""#).is_err());
}

/// With momentum 0, SGD keeps no buffer and is plain gradient descent on `g + wd·p`.
#[test]
fn sgd_without_momentum_is_plain_gradient_descent() {
    let var = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    let config = OptimizerConfig {
        kind: OptimizerKind::Sgd,
        momentum: 0.0,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut opt = Optimizer::new(config, vec![("w".to_string(), var.clone())]).unwrap();
    let mut grads = GradStore::default();
    grads.insert(
        var.as_tensor(),
        Tensor::new(&[0.5f32, -1.0], &Device::Cpu).unwrap(),
    );
    opt.step(&grads, 0.1).unwrap();
    // g + wd·p = [0.6, -0.8]; p - 0.1·that = [0.94, 2.08].
    let want = Tensor::new(&[0.94f32, 2.08], &Device::Cpu).unwrap();
    assert_close("sgd", var.as_tensor(), &want, RTOL, ATOL);
    let names: Vec<String> = opt
        .state_tensors()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["step", "step.w"]);
}

/// Lower-precision parameters are updated in f32 and written back in their own dtype.
#[test]
fn bf16_parameters_keep_their_dtype() {
    let init = Tensor::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
    let var = Var::from_tensor(&init.to_dtype(DType::BF16).unwrap()).unwrap();
    let vars = vec![("w".to_string(), var.clone())];
    let config = OptimizerConfig {
        kind: OptimizerKind::AdamW,
        ..Default::default()
    };
    let mut opt = Optimizer::new(config, vars).unwrap();
    let mut grads = GradStore::default();
    grads.insert(
        var.as_tensor(),
        Tensor::new(&[1.0f32, 1.0, -1.0], &Device::Cpu).unwrap(),
    );
    opt.step(&grads, 0.25).unwrap();
    assert_eq!(var.dtype(), DType::BF16);
    // First Adam step moves each weight by lr against the gradient's sign.
    assert_eq!(values(var.as_tensor()), [0.75, -2.25, 3.25]);
}

#[test]
fn schedules_match_transformers() {
    let fx = Fixture::load("schedules.safetensors");
    let base_lr = fx.num("base_lr");
    let mut rows = 0;
    for (key, want) in &fx.tensors {
        let parts: Vec<&str> = key.split('.').collect();
        let [kind, warmup, total] = parts[..] else {
            continue;
        };
        let kind: ScheduleKind = serde_json::from_value(kind.into()).unwrap();
        let warmup_steps = warmup.trim_start_matches('w').parse().unwrap();
        let total = total.trim_start_matches('t').parse().unwrap();
        let config = ScheduleConfig {
            kind,
            warmup_steps,
            warmup_ratio: 0.0,
        };
        let schedule = LrSchedule::new(&config, base_lr, total).unwrap();
        for (k, want) in want.to_vec1::<f64>().unwrap().into_iter().enumerate() {
            let got = schedule.lr(k as u64);
            // Same f64 formula as Python; the margin only allows for a different libm's cos.
            assert!(
                (got - want).abs() <= 1e-12 * base_lr,
                "{key}[{k}]: {got} vs {want}"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 12);
    for row in fx.get("warmup_ratio").to_vec2::<f64>().unwrap() {
        let config = ScheduleConfig {
            warmup_ratio: row[0],
            ..ScheduleConfig::default()
        };
        let schedule = LrSchedule::new(&config, base_lr, row[1] as u64).unwrap();
        assert_eq!(
            schedule.warmup_steps(),
            row[2] as u64,
            "ratio {} of {}",
            row[0],
            row[1]
        );
    }
}

/// The clipping fixture's gradients for `case`, keyed to fresh vars.
fn clip_case(fx: &Fixture, case: &str) -> (Vec<(String, Var)>, GradStore) {
    let vars: Vec<(String, Var)> = PARAMS
        .iter()
        .map(|p| {
            (
                p.to_string(),
                Var::zeros(
                    fx.get(&format!("{case}.grad.{p}")).dims(),
                    DType::F32,
                    &Device::Cpu,
                )
                .unwrap(),
            )
        })
        .collect();
    let mut grads = GradStore::default();
    for (p, var) in &vars {
        grads.insert(var.as_tensor(), fx.get(&format!("{case}.grad.{p}")).clone());
    }
    (vars, grads)
}

#[test]
fn clipping_matches_torch() {
    let fx = Fixture::load("clip.safetensors");
    for case in ["clipped", "unclipped"] {
        let (vars, mut grads) = clip_case(&fx, case);
        let max_norm = fx
            .get(&format!("{case}.max_norm"))
            .to_vec1::<f64>()
            .unwrap()[0];
        let out = clip_grad_norm(&mut grads, &vars, max_norm).unwrap();
        let want_norm = fx
            .get(&format!("{case}.total_norm"))
            .to_vec1::<f32>()
            .unwrap()[0];
        assert!(
            (out.norm - want_norm).abs() <= 1e-6 * want_norm,
            "{case}: {out:?} vs {want_norm}"
        );
        assert!(out.is_finite());
        assert_eq!(out.clipped(), case == "clipped");
        for (p, var) in &vars {
            let want = fx.get(&format!("{case}.clipped.{p}"));
            assert_close(
                &format!("{case} {p}"),
                grads.get(var.as_tensor()).unwrap(),
                want,
                RTOL,
                ATOL,
            );
        }
    }
}

#[test]
fn clipping_skips_missing_grads_and_reports_non_finite_norms() {
    let fx = Fixture::load("clip.safetensors");
    let (vars, mut grads) = clip_case(&fx, "clipped");
    let c = grads.remove(vars[2].1.as_tensor()).unwrap();
    let expected = (values(fx.get("clipped.grad.a"))
        .iter()
        .chain(&values(fx.get("clipped.grad.b"))))
    .map(|x| x * x)
    .sum::<f32>()
    .sqrt();
    let out = clip_grad_norm(&mut grads, &vars, 0.0).unwrap();
    assert!(
        (out.norm - expected).abs() <= 1e-5 * expected,
        "{} vs {expected}",
        out.norm
    );
    assert_eq!(out.scale, 1.0, "max_norm 0 only measures");

    let nan = c.affine(f64::NAN, 0.0).unwrap();
    grads.insert(vars[2].1.as_tensor(), nan);
    let before = values(grads.get(vars[0].1.as_tensor()).unwrap());
    let out = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
    assert!(!out.is_finite() && out.norm.is_nan());
    assert_eq!(
        values(grads.get(vars[0].1.as_tensor()).unwrap()),
        before,
        "left unscaled"
    );
}
