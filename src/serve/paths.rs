//! Names from requests, turned into paths that cannot leave the runs, models and prompts
//! folders: a name is one plain path segment (letters, digits, `.`, `_`, `-`; no leading dot,
//! no `..`), and a resolved path must be a real directory or file under its root, not a symlink.

use std::path::{Path, PathBuf};

/// Why a name or path was refused (the API answers 400 or 404 with this text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    BadName(String),
    NotFound(String),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::BadName(s) | PathError::NotFound(s) => f.write_str(s),
        }
    }
}

/// Check one path segment from a request.
pub fn check_name(name: &str) -> Result<&str, PathError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name)
    } else {
        Err(PathError::BadName(format!(
            "`{}` is not a valid name: use letters, digits, `.`, `_` and `-`, at most 100 \
             characters, not starting with a dot",
            name.chars().take(120).collect::<String>()
        )))
    }
}

/// `root/name` when `name` is a valid segment and names an existing entry under `root` that is
/// not a symlink (so no link can lead outside the root).
pub fn existing_child(root: &Path, name: &str) -> Result<PathBuf, PathError> {
    let name = check_name(name)?;
    let p = root.join(name);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if !m.file_type().is_symlink() => Ok(p),
        _ => Err(PathError::NotFound(format!("no `{name}` here"))),
    }
}

/// A file under `root` given by several segments (e.g. a study report's `cells/x/level_2.wav`):
/// every segment checked, no component a symlink.
pub fn existing_nested(root: &Path, segments: &[&str]) -> Result<PathBuf, PathError> {
    let mut p = root.to_path_buf();
    for s in segments {
        p = existing_child(&p, s)?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "x..y", "/etc", "a b", "é", "a\0b",
            "%2e%2e",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["run-0001", "amen.wav", "a_b.c-d", "X9"] {
            assert_eq!(check_name(good).unwrap(), good);
        }
        assert!(check_name(&"a".repeat(101)).is_err());
    }

    #[test]
    fn symlinks_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
        assert!(existing_child(d.path(), "real").is_ok());
        assert!(matches!(
            existing_child(d.path(), "link"),
            Err(PathError::NotFound(_))
        ));
        assert!(matches!(
            existing_child(d.path(), "missing"),
            Err(PathError::NotFound(_))
        ));
        std::fs::write(d.path().join("real/f.wav"), b"x").unwrap();
        assert!(existing_nested(d.path(), &["real", "f.wav"]).is_ok());
        assert!(existing_nested(d.path(), &["link", "passwd"]).is_err());
    }
}
