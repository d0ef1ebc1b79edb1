//! The `jukebox` command: a thin clap layer over the `jukebox` library.

mod cli;

use clap::Parser;

fn main() {
    // Training runs candle's elementwise ops on every core (its pool spins only while an op
    // runs; training ops are large); everything else keeps them on the calling thread.
    let training = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_some_and(|c| c == "train")
        || std::env::args().any(|a| a == "--train" || a.starts_with("--train="));
    jukebox::ops::init_threads_for(training);
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {}", clean_message(&format!("{e:#}")));
        std::process::exit(1);
    }
}

/// candle errors carry a backtrace when RUST_BACKTRACE is set; users get the message only.
fn clean_message(msg: &str) -> String {
    msg.lines()
        .filter(|l| {
            let t = l.trim_start();
            let frame = t
                .split_once(": ")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty());
            let location = t.starts_with("at ") && l.starts_with("    ");
            !(frame && l.starts_with(' ') || location)
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}
