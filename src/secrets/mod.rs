//! Where tokens come from, and the only place (besides the HTTP layer) that sees their text.
//!
//! A token is read from a file or from a systemd credential (`$CREDENTIALS_DIRECTORY/NAME`) into a
//! [`SecretString`] and stays one until it becomes an HTTP header or JSON body field. Invariants:
//! token text never reaches a log, an error message, a `Debug` string, sled or a status file;
//! token files must not be readable by group or others; an empty file is refused, not sent; only a
//! regular file (or a symlink to one) of at most [`MAX_TOKEN_BYTES`] is read, and reading never
//! blocks (a FIFO or device is refused before it is opened). Tokens are compared only by
//! [`same`], in constant time. Per-purpose values (a shop's webhook path and auth header) are
//! HMAC-SHA256s of the webhook secret ([`derive`]), so the secret itself never leaves here; what
//! the daemon sends the platform is signed here too ([`Signer`], Standard Webhooks), with a key
//! that never leaves the signer. `secrecy::ExposeSecret` is used here and in `crate::tripletex`,
//! nowhere else (a test in `crate::layers` keeps it so).
//!
//! Layering: this module knows nothing of the configuration. It takes a path or credential name
//! and answers with a [`SecretsError`] (problem and fix); `config` adds which file and key
//! declared the token.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
pub use secrecy::SecretString;

use crate::files::{FileProblem, read_regular};
pub use signer::{Signer, SigningKeyError};

mod signer;

/// Environment variable systemd sets for `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";
/// Tripletex tokens are well under 100 bytes; anything this large is the wrong file.
pub const MAX_TOKEN_BYTES: u64 = 4096;

/// Whose token it is: decides where the fix tells the operator to get a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// A shop's employee token (created in Tripletex under Employee › API access).
    Employee,
    /// The integration's consumer token (issued by Tripletex).
    Consumer,
    /// The secret every shop's webhook path and auth header are derived from ([`derive`]).
    WebhookSecret,
    /// The Standard Webhooks secret (`whsec_…`) notifications to the platform are signed with.
    NotifySecret,
}

/// Where one token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    location: Location,
    role: TokenRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    File(PathBuf),
    Credential(String),
}

/// Why a token could not be had. Messages name the file or credential, never the token; the
/// `Display` text is the problem and [`SecretsError::fix`] what the operator should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("{name:?} is not a credential name")]
    BadCredentialName { name: String },
    #[error("credential {name:?} needs $CREDENTIALS_DIRECTORY, which is not set")]
    NoCredentialsDirectory { name: String },
    #[error("token file {} {problem}", path.display())]
    Unreadable {
        path: PathBuf,
        problem: FileProblem,
        role: TokenRole,
    },
    #[error("token file {} is accessible by group or others (mode {mode:o})", path.display())]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error(
        "token file {} starts with a UTF-8 byte-order mark (EF BB BF), which Tripletex would take as part of the token",
        path.display()
    )]
    ByteOrderMark { path: PathBuf },
    #[error("token file {} is empty", path.display())]
    Empty { path: PathBuf, role: TokenRole },
    #[error(
        "token file {} holds more than one word (a token has no spaces or line breaks)",
        path.display()
    )]
    NotOneWord { path: PathBuf },
}

impl SecretsError {
    /// The remedy, in the operator's terms.
    pub fn fix(&self) -> String {
        match self {
            Self::BadCredentialName { .. } => {
                "use the NAME from the unit's LoadCredential=NAME:PATH (no slashes)".into()
            }
            Self::NoCredentialsDirectory { name } => format!(
                "run under systemd with LoadCredential={name}:/path/to/token, or use a token file"
            ),
            Self::Unreadable {
                path,
                problem: FileProblem::Missing | FileProblem::Dangling,
                role,
            }
            | Self::Empty { path, role } => new_token_hint(*role, path),
            Self::Unreadable { path, .. } => format!(
                "replace {} with a regular file holding only the token (chmod 600)",
                path.display()
            ),
            Self::NotPrivate { path, .. } => format!("chmod 600 {}", path.display()),
            Self::ByteOrderMark { path } => format!(
                "save it without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {}; chmod 600)",
                path.display()
            ),
            Self::NotOneWord { path } => {
                format!("leave only the token in {} (chmod 600)", path.display())
            }
        }
    }
}

impl TokenSource {
    /// A token in a file (an absolute path, or one relative to the working directory).
    pub fn file(role: TokenRole, path: PathBuf) -> Self {
        Self {
            location: Location::File(path),
            role,
        }
    }

    /// A systemd credential, by the NAME of `LoadCredential=NAME:PATH`.
    pub fn credential(role: TokenRole, name: &str) -> Result<Self, SecretsError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(SecretsError::BadCredentialName {
                name: name.to_owned(),
            });
        }
        Ok(Self {
            location: Location::Credential(name.to_owned()),
            role,
        })
    }

    /// Reads the token; `credentials_dir` stands in for `$CREDENTIALS_DIRECTORY`.
    pub fn load_with(&self, credentials_dir: Option<&Path>) -> Result<SecretString, SecretsError> {
        let (path, private) = match &self.location {
            Location::File(path) => (path.clone(), true),
            Location::Credential(name) => match credentials_dir {
                // systemd makes credentials private itself (and may use ACLs for that).
                Some(dir) => (dir.join(name), false),
                None => {
                    return Err(SecretsError::NoCredentialsDirectory { name: name.clone() });
                }
            },
        };
        let contents =
            read_regular(&path, MAX_TOKEN_BYTES).map_err(|problem| SecretsError::Unreadable {
                path: path.clone(),
                problem,
                role: self.role,
            })?;
        let mode = contents.mode & 0o777;
        if private && mode & 0o077 != 0 {
            return Err(SecretsError::NotPrivate { path, mode });
        }
        let token = contents.text.trim();
        // Refused, not stripped: a token file holds only the token, and one saved by an editor
        // that adds a BOM may be sent as it is by other tools (curl -H @file) too.
        if token.starts_with('\u{FEFF}') {
            return Err(SecretsError::ByteOrderMark { path });
        }
        if token.is_empty() {
            return Err(SecretsError::Empty {
                path,
                role: self.role,
            });
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SecretsError::NotOneWord { path });
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
}

/// Whether two secrets are equal. The time taken depends on their lengths only (a token's length
/// is no secret), so timing a comparison reveals nothing of either.
pub fn same(a: &SecretString, b: &SecretString) -> bool {
    constant_time_eq(a.expose_secret().as_bytes(), b.expose_secret().as_bytes())
}

/// The secret's length in bytes (a length is no secret; see [`same`]).
pub fn length(secret: &SecretString) -> usize {
    secret.expose_secret().len()
}

/// HMAC-SHA256 of `context` under `secret`, as lowercase hex: a per-`context` secret (e.g. one
/// shop's webhook auth header) that reveals nothing of `secret` or of any other context's value.
pub fn derive(secret: &SecretString, context: &str) -> SecretString {
    SecretString::from(hmac_hex(secret, context))
}

/// Like [`derive`], for a value that is published (a webhook callback path): knowing it reveals
/// neither `secret` nor `context`, but it is not kept secret itself.
pub fn derive_public(secret: &SecretString, context: &str) -> String {
    hmac_hex(secret, context)
}

/// Whether `signature` is the base64 (standard alphabet) HMAC-SHA512 of the concatenated
/// `parts` under `secret`: how Tripletex signs a webhook callback with a subscription's
/// `hmacSharedSecret`. Compared in constant time; anything that does not decode is wrong.
pub fn verify_sha512(secret: &SecretString, parts: &[&[u8]], signature: &str) -> bool {
    use aws_lc_rs::hmac;
    use base64::Engine as _;
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret.expose_secret().as_bytes());
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    constant_time_eq(context.sign().as_ref(), &tag)
}

fn hmac_hex(secret: &SecretString, context: &str) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    let tag = hmac::sign(&key, context.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Every byte is visited whatever differs; black_box keeps the optimizer from turning the
    // fold back into a compare that stops at the first difference.
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

fn new_token_hint(role: TokenRole, path: &Path) -> String {
    match role {
        TokenRole::Employee => format!(
            "create a key in Tripletex under Employee › API access › New key (shown once), paste it into {} (chmod 600), then reload",
            path.display()
        ),
        TokenRole::Consumer => format!(
            "put the consumer token Tripletex issued for this integration into {} (chmod 600)",
            path.display()
        ),
        TokenRole::WebhookSecret => format!(
            "put a random secret into {0} (e.g. openssl rand -hex 32 > {0}; chmod 600)",
            path.display()
        ),
        TokenRole::NotifySecret => format!(
            "put the platform's whsec_ secret into {0} (or make one: echo \"whsec_$(openssl rand -base64 32)\" > {0}; chmod 600, and give the platform the same)",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn source(dir: &Path, file: &str) -> TokenSource {
        TokenSource::file(TokenRole::Employee, dir.join(file))
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Problem and fix, as config prints them.
    fn refusal(e: &SecretsError) -> String {
        format!("{e} (fix: {})", e.fix())
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
        let e = source(dir.path(), "acme").load_with(None).unwrap_err();
        assert!(matches!(e, SecretsError::NotPrivate { mode: 0o640, .. }));
        let err = refusal(&e);
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("CANARY-PERM"), "{err}");
    }

    #[test]
    fn refuses_missing_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = refusal(&source(dir.path(), "nope").load_with(None).unwrap_err());
        assert!(
            err.contains("does not exist") && err.contains("API access"),
            "{err}"
        );
        write(&dir.path().join("empty"), " \n", 0o600);
        let err = refusal(&source(dir.path(), "empty").load_with(None).unwrap_err());
        assert!(err.contains("is empty"), "{err}");
        let consumer = TokenSource::file(TokenRole::Consumer, dir.path().join("nope"));
        let err = refusal(&consumer.load_with(None).unwrap_err());
        assert!(err.contains("consumer token Tripletex issued"), "{err}");
    }

    #[test]
    fn refuses_a_token_with_spaces_and_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("two"), "abc def", 0o600);
        let e = source(dir.path(), "two").load_with(None).unwrap_err();
        assert!(matches!(e, SecretsError::NotOneWord { .. }), "{e}");
        assert!(!refusal(&e).contains("abc"), "{e}");
        let dir_as_token = source(dir.path(), ".").load_with(None).unwrap_err();
        assert!(
            refusal(&dir_as_token).contains("with a regular file"),
            "{dir_as_token}"
        );
    }

    #[test]
    fn refuses_a_token_file_starting_with_a_byte_order_mark_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        for (role, text) in [
            (TokenRole::Employee, "\u{FEFF}CANARY-BOM\n"),
            (TokenRole::Consumer, " \u{FEFF}CANARY-BOM"),
            (TokenRole::WebhookSecret, "\u{FEFF}"),
        ] {
            write(&dir.path().join("bom"), text, 0o600);
            let e = TokenSource::file(role, dir.path().join("bom"))
                .load_with(None)
                .unwrap_err();
            assert!(matches!(e, SecretsError::ByteOrderMark { .. }), "{e}");
            let err = refusal(&e);
            assert!(
                err.contains("starts with a UTF-8 byte-order mark (EF BB BF)")
                    && err.contains("(fix: save it without BOM"),
                "{err}"
            );
            assert!(
                !err.contains("CANARY") && !err.contains('\u{FEFF}'),
                "{err}"
            );
        }
    }

    #[test]
    fn reads_systemd_credentials_and_explains_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("acme"), "cred-token", 0o400);
        let src = TokenSource::credential(TokenRole::Employee, "acme").unwrap();
        assert_eq!(
            src.load_with(Some(dir.path())).unwrap().expose_secret(),
            "cred-token"
        );
        let err = refusal(&src.load_with(None).unwrap_err());
        assert!(
            err.contains("CREDENTIALS_DIRECTORY") && err.contains("LoadCredential"),
            "{err}"
        );
    }

    #[test]
    fn credential_names_have_no_slashes() {
        for bad in ["", "a/b", ".", ".."] {
            let e = TokenSource::credential(TokenRole::Consumer, bad).unwrap_err();
            assert!(refusal(&e).contains("not a credential name"), "{e}");
        }
    }

    #[test]
    fn same_compares_whole_secrets() {
        let s = |t: &str| SecretString::from(t.to_owned());
        assert!(same(&s("abc-123"), &s("abc-123")));
        assert!(same(&s(""), &s("")));
        assert!(!same(&s("abc-123"), &s("abc-124")));
        assert!(!same(&s("xbc-123"), &s("abc-123")));
        assert!(!same(&s("abc-123"), &s("abc-1234")));
        assert!(!same(&s("abc"), &s("")));
    }

    #[test]
    fn derived_values_differ_per_context_and_secret() {
        let s = |t: &str| SecretString::from(t.to_owned());
        let a = derive_public(&s("secret-one"), "path/acme");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, derive_public(&s("secret-one"), "path/acme"));
        assert_ne!(a, derive_public(&s("secret-one"), "path/acme2"));
        assert_ne!(a, derive_public(&s("secret-two"), "path/acme"));
        assert!(same(
            &derive(&s("k"), "x"),
            &s(&derive_public(&s("k"), "x"))
        ));
    }

    #[test]
    fn debug_output_redacts() {
        let token = SecretString::from("CANARY-DEBUG".to_owned());
        assert!(!format!("{token:?}").contains("CANARY-DEBUG"));
    }
}
