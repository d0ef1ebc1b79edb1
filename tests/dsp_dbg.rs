#[test]
fn dbg() {
    for secs in [1usize, 5] {
        for f in [440.0f64, 1000.0] {
            let w = 2.0 * std::f64::consts::PI * f / 44100.0;
            let x: Vec<f32> = (0..44100 * secs).map(|i| 0.5 * (w * i as f64).sin() as f32).collect();
            eprintln!("MSG {secs}s {f}: {}", jukebox::dsp::spectral_centroid(&x, 44100));
            let mag = jukebox::dsp::stft_mag(&x, 2048, 512, 2048);
            let mid = &mag[mag.len() / 2];
            let tot: f32 = mid.iter().sum();
            let c: f32 = mid.iter().enumerate().map(|(k, m)| k as f32 * 44100.0 / 2048.0 * m).sum::<f32>() / tot;
            eprintln!("MSG mid frame centroid {c}; frame0 sum {} mid sum {}", mag[0].iter().sum::<f32>(), tot);
        }
    }
}
