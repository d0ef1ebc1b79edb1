//! `jukebox logits` end to end on the fixture model.

use candle_core::{DType, Device, D};
use std::path::Path;
use std::process::{Command, Output};

fn write_codes(path: &Path) {
    // Level codes from the HF end-to-end fixture, as a codes file (docs/CONVENTIONS.md).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures");
    let io = candle_core::safetensors::load(dir.join("e2e_io.safetensors"), &Device::Cpu).unwrap();
    let levels = [
        Some(io["tokens_bottom"].clone()),
        Some(io["tokens_mid"].clone()),
        Some(io["tokens_top"].clone()),
    ];
    jukebox::vqvae::save_codes(path, &levels, 44100, &[8, 32, 128]).unwrap();
}

/// `jukebox logits --model MODEL --codes CODES ARGS…`.
fn logits(model: &Path, codes: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(["logits", "--model"])
        .arg(model)
        .arg("--codes")
        .arg(codes)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn logits_command_writes_consistent_nll() {
    let tmp = tempfile::tempdir().unwrap();
    let codes = tmp.path().join("codes.safetensors");
    write_codes(&codes);
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model");
    for level in ["top", "1", "bottom"] {
        let out = tmp.path().join(format!("logits_{level}.safetensors"));
        let out_s = out.to_str().unwrap();
        let o = logits(
            &model,
            &codes,
            &[
                "--level", level, "--artist", "#3", "--genre", "#2", "--genre", "#5", "-o", out_s,
            ],
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{level}: {stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let t = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
        let logits = &t["logits"];
        assert_eq!(logits.dims(), &[2, 64, 64]);
        let nll = &t["nll_bits"];
        // Recompute the NLL of the level's codes from the written logits.
        let io = candle_core::safetensors::load(&codes, &Device::Cpu).unwrap();
        let key = match level {
            "top" => "level_2",
            "1" => "level_1",
            _ => "level_0",
        };
        let tok = io[key]
            .to_dtype(DType::U32)
            .unwrap()
            .unsqueeze(D::Minus1)
            .unwrap();
        let lse = logits
            .exp()
            .unwrap()
            .sum_keepdim(D::Minus1)
            .unwrap()
            .log()
            .unwrap();
        let lp = logits
            .broadcast_sub(&lse)
            .unwrap()
            .gather(&tok, D::Minus1)
            .unwrap()
            .squeeze(D::Minus1)
            .unwrap();
        let want = (lp.neg().unwrap() / std::f64::consts::LN_2).unwrap();
        let err = (nll - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err < 1e-4, "{level}: nll mismatch {err}");
        let mean = nll.mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(
            stdout.contains(&format!("mean NLL: {mean:.4}")),
            "{level}: {stdout}"
        );
        assert!(mean > 0.0 && mean < 6.0, "{level}: {mean}");
    }
    // `--dtype q8`: the same logits to about a percent (int8 weights), not the same bits.
    let run = |dtype: &str| {
        let out = tmp.path().join(format!("logits_{dtype}.safetensors"));
        let o = logits(
            &model,
            &codes,
            &[
                "--artist",
                "#3",
                "--dtype",
                dtype,
                "-o",
                out.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        candle_core::safetensors::load(&out, &Device::Cpu).unwrap()["logits"].clone()
    };
    let (f, q) = (run("f32"), run("q8"));
    let rms = |t: &candle_core::Tensor| {
        let ms = t.sqr().unwrap().mean_all().unwrap();
        ms.to_scalar::<f32>().unwrap().sqrt()
    };
    let rel = rms(&(&q - &f).unwrap()) / rms(&f);
    assert!(
        rel > 1e-6 && rel < 0.05,
        "q8 vs f32 logits: relative RMS {rel}"
    );
    let o = logits(&model, &codes, &["--dtype", "int4"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("--dtype") && e.contains("q8"),
        "{e}"
    );
    // Unknown names are errors with a hint; out-of-range levels too.
    let o = logits(&model, &codes, &["--artist", "nobody"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("#12"));
}
