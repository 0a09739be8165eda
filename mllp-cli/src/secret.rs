//! Values that may hold a password (a store URL, a broker URL, a private key's password), kept
//! off the command line: besides `--NAME VALUE`, each can come from `--NAME-file PATH` (the
//! first line of a file only its service can read, such as a systemd credential) or from an
//! environment variable (a systemd `EnvironmentFile`). Neither shows in `ps` or
//! `/proc/PID/cmdline`. A password itself has no `--NAME VALUE` form at all.

use std::path::PathBuf;

use super::options::Failure;

/// Where one such value comes from.
#[derive(Debug, Default)]
pub struct Secret {
    /// `--NAME VALUE`.
    pub given: Option<String>,
    /// `--NAME-file PATH`.
    pub file: Option<PathBuf>,
}

impl Secret {
    /// The value: `--NAME`, else the file of `--NAME-file`, else the variable `env`, else
    /// `default`. Both options at once, an unreadable or empty file, or no value at all (when
    /// there is no default) are errors that name the source, never the value.
    pub fn resolve(&self, name: &str, env: &str, default: Option<&str>) -> Result<String, Failure> {
        match self.lookup(name, env)? {
            Some(value) => Ok(value),
            None => default.map(str::to_owned).ok_or_else(|| {
                Failure::fatal(format!("--{name} (or --{name}-file, or {env}) is needed"))
            }),
        }
    }

    /// The value as [`resolve`](Self::resolve) finds it, or `None` when neither option is
    /// given and the variable `env` is not set. Surrounding white space is not part of it.
    pub fn lookup(&self, name: &str, env: &str) -> Result<Option<String>, Failure> {
        match (&self.given, &self.file) {
            (Some(_), Some(_)) => Err(Failure::fatal(format!(
                "--{name} and --{name}-file cannot be used together"
            ))),
            (Some(value), None) => Ok(Some(value.clone())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::fatal(format!("--{name}-file {}: {e}", path.display()))
                })?;
                let line = text.lines().next().unwrap_or_default().trim();
                if line.is_empty() {
                    return Err(Failure::fatal(format!(
                        "--{name}-file {}: the file's first line is empty",
                        path.display()
                    )));
                }
                Ok(Some(line.to_owned()))
            }
            (None, None) => match std::env::var(env) {
                Ok(value) if !value.trim().is_empty() => Ok(Some(value.trim().to_owned())),
                Ok(_) => Err(Failure::fatal(format!(
                    "the environment variable {env} is empty"
                ))),
                Err(std::env::VarError::NotUnicode(_)) => Err(Failure::fatal(format!(
                    "the environment variable {env} is not valid UTF-8"
                ))),
                Err(std::env::VarError::NotPresent) => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_then_file_then_environment_then_default() {
        let dir = std::env::temp_dir().join(format!("mllp-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        std::fs::write(&file, "amqp://u:s3cret@h/%2f?queue=q\nignored\n").unwrap();
        let env = "MLLP_TEST_SECRET_UNSET_VARIABLE";
        let given = Secret {
            given: Some("d".into()),
            file: None,
        };
        assert_eq!(given.resolve("store", env, None).unwrap(), "d");
        let from_file = Secret {
            given: None,
            file: Some(file.clone()),
        };
        assert_eq!(
            from_file.resolve("store", env, None).unwrap(),
            "amqp://u:s3cret@h/%2f?queue=q"
        );
        let none = Secret::default();
        assert_eq!(none.lookup("tls-key-password", env).unwrap(), None);
        assert_eq!(
            none.resolve("store", env, Some("./inbox")).unwrap(),
            "./inbox"
        );
        let e = none.resolve("from", env, None).unwrap_err().reason;
        assert!(e.contains("--from-file") && e.contains(env), "{e}");
        let both = Secret {
            given: Some("d".into()),
            file: Some(file.clone()),
        };
        assert!(both.resolve("store", env, None).is_err());
        std::fs::write(&file, "\n").unwrap();
        let e = from_file.resolve("store", env, None).unwrap_err().reason;
        assert!(e.contains("empty") && !e.contains("s3cret"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
