//! `jukebox completions`, `jukebox man` and `jukebox flags`: shell completions, man pages and the
//! flag table of `docs/CLI.md`, all generated from the clap definitions so they cannot drift.

use anyhow::{Context, Result};
use clap::CommandFactory;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Folder for the pages (`jukebox.1`, `jukebox-sample.1`, ...).
    #[arg(
        short = 'o',
        long = "out",
        visible_alias = "output",
        default_value = "man"
    )]
    pub out: PathBuf,
}

pub fn completions(a: CompletionsArgs) -> Result<()> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "jukebox", &mut std::io::stdout());
    Ok(())
}

pub fn man(a: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let cmd = super::Cli::command();
    clap_mangen::generate_to(cmd, &a.out)
        .with_context(|| format!("cannot write man pages to {}", a.out.display()))?;
    let n = std::fs::read_dir(&a.out)?.count();
    println!("wrote {n} man page(s) to {}", a.out.display());
    Ok(())
}

/// Every flag of every (sub)command as a Markdown table: command, flag, value, default, help.
pub fn flag_table() -> String {
    let mut s =
        String::from("| command | flag | value | default | what |\n|---|---|---|---|---|\n");
    let mut cmd = super::Cli::command();
    cmd.build();
    walk(&cmd, "jukebox", &mut s);
    s
}

fn walk(cmd: &clap::Command, path: &str, s: &mut String) {
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
            continue;
        }
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(c), Some(l)) => format!("`-{c}`, `--{l}`"),
            (None, Some(l)) => format!("`--{l}`"),
            (Some(c), None) => format!("`-{c}`"),
            (None, None) => format!("`<{}>`", arg.get_id().as_str().to_uppercase()),
        };
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values())
            && !matches!(
                arg.get_action(),
                clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
            );
        let value = if takes_value {
            arg.get_value_names()
                .map(|v| v.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
        } else {
            String::new()
        };
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let help = arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        let _ = writeln!(
            s,
            "| `{path}` | {flag} | {} | {} | {help} |",
            if value.is_empty() {
                String::new()
            } else {
                format!("`{value}`")
            },
            if default.is_empty() || !takes_value {
                String::new()
            } else {
                format!("`{}`", default.join(","))
            }
        );
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        walk(sub, &format!("{path} {}", sub.get_name()), s);
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// Words of a shell line: whitespace-separated, single quotes removed, `# comment` dropped.
    fn words(line: &str) -> Vec<String> {
        let line = match line.find(" # ") {
            Some(i) => &line[..i],
            None => line,
        };
        line.split_whitespace()
            .map(|w| w.replace('\'', ""))
            .collect()
    }

    /// Every example in every `--help` parses: its command and flags exist.
    #[test]
    fn help_examples_parse() {
        let mut cmd = super::super::Cli::command();
        cmd.build();
        let mut n = 0;
        let mut stack: Vec<clap::Command> = vec![cmd];
        while let Some(c) = stack.pop() {
            if let Some(h) = c.get_after_help() {
                for line in h.to_string().lines().map(str::trim) {
                    if !line.starts_with("jukebox ") {
                        continue;
                    }
                    let w = words(line);
                    if let Err(e) = super::super::Cli::try_parse_from(&w) {
                        panic!("example `{line}` does not parse: {e}");
                    }
                    n += 1;
                }
            }
            stack.extend(c.get_subcommands().cloned());
        }
        assert!(n >= 30, "only {n} examples");
    }
}
