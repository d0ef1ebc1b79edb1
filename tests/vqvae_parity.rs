//! `jukebox parity` on the HF fixtures: every VQ-VAE check passes (other components may skip).

use jukebox::parity::{self, Status};
use std::path::Path;

#[test]
fn hf_fixture_vqvae_checks_pass() {
    let dir = Path::new("tests/fixtures/reference/fixtures");
    let mut report = parity::Report::new(false);
    parity::run(dir, &mut report).expect("parity run");
    let vq: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.name.starts_with("vqvae"))
        .collect();
    for c in &vq {
        println!("{}", parity::format_check(c));
    }
    // 3 levels × (latent, codes, codes chunked, dequantised, decoded, decoded chunked).
    assert_eq!(vq.len(), 18, "expected 18 VQ-VAE checks");
    for c in vq {
        assert_eq!(c.status, Status::Pass, "{}", parity::format_check(c));
    }
}
