//! Where tokens come from, and the only place (besides the HTTP layer) that sees their text.
//!
//! A token is read from a file or from a systemd credential (`$CREDENTIALS_DIRECTORY/NAME`) into a
//! [`SecretString`] and stays one until it becomes an HTTP header or JSON body field. Invariants:
//! token text never reaches a log, an error message, a `Debug` string, sled or a status file;
//! token files must not be readable by group or others; an empty file is refused, not sent; only a
//! regular file (or a symlink to one) of at most [`MAX_TOKEN_BYTES`] is read, and reading never
//! blocks (a FIFO or device is refused before it is opened).

use std::path::{Path, PathBuf};

pub use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, FileProblem, read_regular, resolve};

/// Environment variable systemd sets for `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";
/// Tripletex tokens are well under 100 bytes; anything this large is the wrong file.
pub const MAX_TOKEN_BYTES: u64 = 4096;

/// Where one token is stored, and which config key said so (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    location: Location,
    declared_in: PathBuf,
    key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    File(PathBuf),
    Credential(String),
}

impl TokenSource {
    /// Builds the source from a `*_file` / `*_credential` key pair, of which exactly one is set.
    pub fn from_keys(
        declared_in: &Path,
        base: &Path,
        file_key: &str,
        file: Option<&str>,
        credential_key: &str,
        credential: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let (location, key) = match (file, credential) {
            (Some(f), None) if !f.trim().is_empty() => (Location::File(resolve(base, f)), file_key),
            (None, Some(c)) if valid_credential_name(c) => {
                (Location::Credential(c.to_owned()), credential_key)
            }
            (None, Some(c)) => {
                return Err(ConfigError::new(
                    declared_in,
                    Some(credential_key),
                    format!("{c:?} is not a credential name"),
                    "use the NAME from the unit's LoadCredential=NAME:PATH (no slashes)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    declared_in,
                    Some(file_key),
                    format!("both `{file_key}` and `{credential_key}` are set"),
                    "keep one of them",
                ));
            }
            _ => {
                return Err(ConfigError::new(
                    declared_in,
                    Some(file_key),
                    "no token configured",
                    format!("set `{file_key} = \"PATH\"` or `{credential_key} = \"NAME\"`"),
                ));
            }
        };
        Ok(Self {
            location,
            declared_in: declared_in.to_path_buf(),
            key: key.to_owned(),
        })
    }

    /// Reads the token; `credentials_dir` stands in for `$CREDENTIALS_DIRECTORY`.
    pub fn load_with(&self, credentials_dir: Option<&Path>) -> Result<SecretString, ConfigError> {
        let (path, private) = match &self.location {
            Location::File(path) => (path.clone(), true),
            Location::Credential(name) => match credentials_dir {
                // systemd makes credentials private itself (and may use ACLs for that).
                Some(dir) => (dir.join(name), false),
                None => {
                    return Err(self.error(
                        format!("credential {name:?} needs $CREDENTIALS_DIRECTORY, which is not set"),
                        format!(
                            "run under systemd with LoadCredential={name}:/path/to/token, or use a token file"
                        ),
                    ));
                }
            },
        };
        let contents = read_regular(&path, MAX_TOKEN_BYTES).map_err(|problem| {
            let fix = match problem {
                FileProblem::Missing | FileProblem::Dangling => self.fix_hint(&path),
                _ => format!(
                    "replace {} with a regular file holding only the token (chmod 600)",
                    path.display()
                ),
            };
            self.error(format!("token file {} {problem}", path.display()), fix)
        })?;
        let mode = contents.mode & 0o777;
        if private && mode & 0o077 != 0 {
            return Err(self.error(
                format!(
                    "token file {} is accessible by group or others (mode {mode:o})",
                    path.display()
                ),
                format!("chmod 600 {}", path.display()),
            ));
        }
        let token = contents.text.trim();
        if token.is_empty() {
            return Err(self.error(
                format!("token file {} is empty", path.display()),
                self.fix_hint(&path),
            ));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.error(
                format!(
                    "token file {} holds more than one word (a token has no spaces or line breaks)",
                    path.display()
                ),
                format!("leave only the token in {} (chmod 600)", path.display()),
            ));
        }
        Ok(SecretString::from(token.to_owned()))
    }

    /// What an operator sees in messages: the path or credential name, never the token.
    pub fn describe(&self) -> String {
        match &self.location {
            Location::File(p) => p.display().to_string(),
            Location::Credential(n) => format!("credential {n}"),
        }
    }

    fn fix_hint(&self, path: &Path) -> String {
        if self.key.starts_with("employee") {
            format!(
                "create a key in Tripletex under Employee › API access › New key (shown once), paste it into {} (chmod 600), then reload",
                path.display()
            )
        } else {
            format!(
                "put the consumer token Tripletex issued for this integration into {} (chmod 600)",
                path.display()
            )
        }
    }

    fn error(&self, problem: String, fix: String) -> ConfigError {
        ConfigError::new(&self.declared_in, Some(&self.key), problem, fix)
    }
}

fn valid_credential_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn source(dir: &Path, file: &str) -> TokenSource {
        TokenSource::from_keys(
            &dir.join("shops.d/acme.toml"),
            dir,
            "employee_token_file",
            Some(file),
            "employee_token_credential",
            None,
        )
        .unwrap()
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reads_and_trims_a_private_token_file() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("acme"), "  abc-123\n", 0o600);
        let token = source(dir.path(), "acme").load_with(None).unwrap();
        assert_eq!(token.expose_secret(), "abc-123");
    }

    #[test]
    fn refuses_group_readable_file_with_chmod_fix() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("acme"), "CANARY-PERM", 0o640);
        let err = source(dir.path(), "acme")
            .load_with(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("employee_token_file"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("acme.toml"), "{err}");
        assert!(!err.contains("CANARY-PERM"), "{err}");
    }

    #[test]
    fn refuses_missing_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = source(dir.path(), "nope")
            .load_with(None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("API access"),
            "{err}"
        );
        write(&dir.path().join("empty"), " \n", 0o600);
        let err = source(dir.path(), "empty")
            .load_with(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");
    }

    #[test]
    fn reads_systemd_credentials_and_explains_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("acme"), "cred-token", 0o400);
        let src = TokenSource::from_keys(
            &dir.path().join("shops.d/acme.toml"),
            dir.path(),
            "employee_token_file",
            None,
            "employee_token_credential",
            Some("acme"),
        )
        .unwrap();
        assert_eq!(
            src.load_with(Some(dir.path())).unwrap().expose_secret(),
            "cred-token"
        );
        let err = src.load_with(None).unwrap_err().to_string();
        assert!(
            err.contains("CREDENTIALS_DIRECTORY") && err.contains("LoadCredential"),
            "{err}"
        );
    }

    #[test]
    fn exactly_one_key_must_be_set() {
        let dir = Path::new("/etc/tripletex-sync");
        let both = TokenSource::from_keys(dir, dir, "a_file", Some("x"), "a_credential", Some("y"));
        assert!(both.unwrap_err().to_string().contains("both"));
        let none = TokenSource::from_keys(dir, dir, "a_file", None, "a_credential", None);
        assert!(
            none.unwrap_err()
                .to_string()
                .contains("no token configured")
        );
    }

    #[test]
    fn debug_output_redacts() {
        let token = SecretString::from("CANARY-DEBUG".to_owned());
        assert!(!format!("{token:?}").contains("CANARY-DEBUG"));
    }
}
