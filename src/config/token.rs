//! A token setting: where the token lives and which key of which file said so.
//!
//! `secrets` reads the token and knows nothing of keys or files that declare them; a
//! [`TokenConfig`] puts its refusals in the one-line [`ConfigError`] form (FILE: `key`: problem
//! (fix: …)), so an unreadable token is blamed like any other value.

use std::path::{Path, PathBuf};

use super::{ConfigError, resolve};
use crate::secrets::{SecretString, SecretsError, TokenRole, TokenSource};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    source: TokenSource,
    declared_in: PathBuf,
    /// The key that is set (`*_file` or `*_credential`).
    key: String,
}

impl TokenConfig {
    /// Builds the setting from a `*_file` / `*_credential` key pair, of which exactly one is set;
    /// a file path is relative to `base`.
    pub fn from_keys(
        role: TokenRole,
        declared_in: &Path,
        base: &Path,
        file_key: &str,
        file: Option<&str>,
        credential_key: &str,
        credential: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let refuse = |key: &str, problem: String, fix: String| {
            ConfigError::new(declared_in, Some(key), problem, fix)
        };
        let (source, key) = match (file, credential) {
            (Some(f), None) if !f.trim().is_empty() => {
                (TokenSource::file(role, resolve(base, f)), file_key)
            }
            (None, Some(c)) => {
                let source = TokenSource::credential(role, c)
                    .map_err(|e| refuse(credential_key, e.to_string(), e.fix()))?;
                (source, credential_key)
            }
            (Some(_), Some(_)) => {
                return Err(refuse(
                    file_key,
                    format!("both `{file_key}` and `{credential_key}` are set"),
                    "keep one of them".into(),
                ));
            }
            _ => {
                return Err(refuse(
                    file_key,
                    "no token configured".into(),
                    format!("set `{file_key} = \"PATH\"` or `{credential_key} = \"NAME\"`"),
                ));
            }
        };
        Ok(Self {
            source,
            declared_in: declared_in.to_path_buf(),
            key: key.to_owned(),
        })
    }

    /// Reads the token; `credentials_dir` stands in for `$CREDENTIALS_DIRECTORY`.
    pub fn load_with(&self, credentials_dir: Option<&Path>) -> Result<SecretString, ConfigError> {
        self.source
            .load_with(credentials_dir)
            .map_err(|e| self.refusal(&e))
    }

    /// Reads a secret that other values are derived from: a token's rules, and at least `min`
    /// bytes, since a short one could be guessed from what is derived from it.
    pub fn load_key_with(
        &self,
        credentials_dir: Option<&Path>,
        min: usize,
    ) -> Result<SecretString, ConfigError> {
        let secret = self.load_with(credentials_dir)?;
        if crate::secrets::length(&secret) < min {
            return Err(self.refuse(
                format!(
                    "the secret in {} is shorter than {min} characters",
                    self.describe()
                ),
                format!(
                    "put a longer random secret there, e.g. openssl rand -hex 32 > {} (chmod 600)",
                    self.describe()
                ),
            ));
        }
        Ok(secret)
    }

    /// What an operator sees in messages: the path or credential name, never the token.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// A refusal of the secret this names, blamed on the key that declared it.
    pub(super) fn refuse(&self, problem: String, fix: String) -> ConfigError {
        ConfigError::new(&self.declared_in, Some(&self.key), problem, fix)
    }

    fn refusal(&self, e: &SecretsError) -> ConfigError {
        ConfigError::new(&self.declared_in, Some(&self.key), e.to_string(), e.fix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn employee(dir: &Path, file: Option<&str>, credential: Option<&str>) -> TokenConfig {
        TokenConfig::from_keys(
            TokenRole::Employee,
            &dir.join("shops.d/acme.toml"),
            dir,
            "employee_token_file",
            file,
            "employee_token_credential",
            credential,
        )
        .unwrap()
    }

    #[test]
    fn refusals_name_the_declaring_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("acme");
        std::fs::write(&token, "CANARY-PERM").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = employee(dir.path(), Some("acme"), None)
            .load_with(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("employee_token_file"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("acme.toml"), "{err}");
        assert!(!err.contains("CANARY-PERM"), "{err}");
        let err = employee(dir.path(), None, Some("acme"))
            .load_with(None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "`employee_token_credential`: credential \"acme\" needs $CREDENTIALS_DIRECTORY"
            ) && err.contains("(fix: run under systemd with LoadCredential=acme:"),
            "{err}"
        );
    }

    #[test]
    fn a_relative_file_is_relative_to_the_declaring_folder() {
        let dir = tempfile::tempdir().unwrap();
        let token = employee(dir.path(), Some("tokens/acme"), None);
        assert_eq!(
            token.describe(),
            dir.path().join("tokens/acme").display().to_string()
        );
    }

    #[test]
    fn exactly_one_key_must_be_set() {
        let dir = Path::new("/etc/tripletex-sync");
        let keys = |file, credential| {
            TokenConfig::from_keys(
                TokenRole::Consumer,
                dir,
                dir,
                "a_file",
                file,
                "a_credential",
                credential,
            )
        };
        assert!(
            keys(Some("x"), Some("y"))
                .unwrap_err()
                .to_string()
                .contains("both")
        );
        assert!(
            keys(None, None)
                .unwrap_err()
                .to_string()
                .contains("no token configured")
        );
        let bad = keys(None, Some("a/b")).unwrap_err().to_string();
        assert!(
            bad.contains("`a_credential`: \"a/b\" is not a credential name"),
            "{bad}"
        );
    }
}
