//! Shop files: one `NAME.toml` per shop in `shops_dir`, the file stem being the shop's name.
//!
//! Invariants: shops_dir is not empty and not the main file's folder (whose main file would be read
//! as a shop); a shop name is `[A-Za-z0-9_-]+`, and no two differ only in case (they would be one
//! shop on a case-insensitive file system and in every place that folds names); only files ending
//! in exactly `.toml` are read, dot-files never; a shop's number ranges are checked against its
//! kind's defaults here. [`unread`] names the files that look like shop files but are not read
//! (`bike.TOML`), for `validate` to warn about.

use std::path::{Path, PathBuf};

use super::state_dir::within;
use super::{
    Blame, ConfigError, MAX_CONFIG_BYTES, ShopConfig, TokenConfig, parent_dir, parse, raw, resolve,
};
use crate::checks::{CheckKind, NumberRange, PerKind};
use crate::files::read_regular;
use crate::secrets::TokenRole;

fn read_shop(path: &Path) -> Result<raw::RawShop, ConfigError> {
    let text = read_regular(path, MAX_CONFIG_BYTES).map_err(|problem| {
        ConfigError::new(
            path,
            None,
            format!("the shop file {problem}"),
            "shops_dir holds one regular NAME.toml file per shop: replace or remove this one",
        )
    })?;
    parse::file(path, &text.text)
}

/// `shops_dir` resolved against `base` (the main file's folder): not empty, and not that folder
/// itself, where the main file would be read as a shop file.
pub(super) fn resolve_shops_dir(base: &Path, value: &str) -> Result<PathBuf, (String, String)> {
    const FIX: &str = "put the shop files in a folder of their own, e.g. shops_dir = \"shops.d\"";
    if value.trim().is_empty() {
        return Err((
            "is empty: the main file's own folder would be read as the shops folder".into(),
            FIX.into(),
        ));
    }
    let dir = resolve(base, value);
    if within(&dir, base) && within(base, &dir) {
        return Err((
            format!(
                "{} is the main file's own folder: the main file would be read as a shop file",
                dir.display()
            ),
            FIX.into(),
        ));
    }
    Ok(dir)
}

/// Every shop file in `dir`, loaded, in the order of their paths.
pub(super) fn load_shops(dir: &Path, blame: &Blame<'_>) -> Result<Vec<ShopConfig>, ConfigError> {
    let files: Vec<PathBuf> = list(dir)
        .map_err(|e| {
            let problem = match e.kind() {
                std::io::ErrorKind::NotADirectory => format!("{} is not a folder", dir.display()),
                kind => format!("cannot list the shops folder {}: {kind}", dir.display()),
            };
            blame.err(
                "shops_dir",
                problem,
                "create the folder (it may be empty) or fix `shops_dir`",
            )
        })?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    refuse_case_twins(&files)?;
    files.iter().map(|f| load_shop(f)).collect()
}

/// Files in `dir` that end in `.toml` in another case (`bike.TOML`): not read, which an operator
/// who wrote one would not guess. Empty when `dir` cannot be listed (loading said so already).
pub(super) fn unread(dir: &Path) -> Vec<ConfigError> {
    list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x != "toml" && x.eq_ignore_ascii_case("toml"))
        })
        .map(|p| {
            ConfigError::new(
                &p,
                None,
                "is not read: only files ending in .toml (lower case) are shop files",
                "rename it to NAME.toml to make it a shop, or move it out of shops_dir",
            )
        })
        .collect()
}

/// The paths in `dir` but its dot-files (editor swap files, `.git`), sorted.
fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Shop names that differ only in case would be one shop on a case-insensitive file system, and
/// an operator reading `status` could not tell which is which.
fn refuse_case_twins(files: &[PathBuf]) -> Result<(), ConfigError> {
    let mut seen: std::collections::HashMap<String, &PathBuf> = Default::default();
    for file in files {
        let stem = file.file_stem().unwrap_or_default().to_string_lossy();
        if let Some(first) = seen.insert(stem.to_lowercase(), file) {
            return Err(ConfigError::new(
                file,
                None,
                format!(
                    "shop name {stem:?} differs only in case from the shop file {}",
                    first.display()
                ),
                "keep one file per shop: merge the two or rename one (shop names must differ in more than case)",
            ));
        }
    }
    Ok(())
}

fn load_shop(path: &Path) -> Result<ShopConfig, ConfigError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(allowed) {
        let found = name
            .chars()
            .find(|c| !allowed(*c))
            .map(|c| format!(", not {c:?}"))
            .unwrap_or_default();
        return Err(ConfigError::new(
            path,
            None,
            format!(
                "shop name {name:?} (the file name) may only use the ASCII letters a–z and A–Z, digits 0–9, - and _{found}"
            ),
            "rename the file, e.g. shops.d/acme-store.toml",
        ));
    }
    let raw = read_shop(path)?;
    let employee_token = TokenConfig::from_keys(
        TokenRole::Employee,
        path,
        &parent_dir(path),
        "employee_token_file",
        raw.employee_token_file.as_deref(),
        "employee_token_credential",
        raw.employee_token_credential.as_deref(),
    )?;
    if !(0..=i64::from(i32::MAX)).contains(&raw.company_id) {
        return Err(ConfigError::new(
            path,
            Some("company_id"),
            format!(
                "{} is out of range: must be 0 (the key owner's company) or a company id up to {}",
                raw.company_id,
                i32::MAX
            ),
            "use 0 unless you log in as an accountant for a client company",
        ));
    }
    let checks = PerKind::try_from_fn(|kind| numbers(path, kind, &raw.checks[kind]))?;
    Ok(ShopConfig {
        name,
        source: path.to_path_buf(),
        employee_token,
        company_id: raw.company_id,
        enabled: raw.enabled,
        checks,
    })
}

/// The `[key]` table of a check kind, with the kind's defaults filled in.
fn numbers(
    path: &Path,
    kind: CheckKind,
    raw: &raw::RawNumbers,
) -> Result<Option<NumberRange>, ConfigError> {
    let section = kind.as_str();
    let NumberRange {
        shop_start: shop_default,
        tripletex_start: tripletex_default,
    } = kind.spec().defaults;
    let range = NumberRange {
        shop_start: raw.shop_start.unwrap_or(shop_default),
        tripletex_start: raw.tripletex_start.unwrap_or(tripletex_default),
    };
    // Tripletex's numbers are 32-bit signed integers.
    let max = i32::MAX as u32;
    if range.shop_start == 0 {
        return Err(ConfigError::new(
            path,
            Some(&format!("{section}.shop_start")),
            "0 is out of range: numbers start at 1",
            format!("e.g. shop_start = {shop_default}"),
        ));
    }
    if range.tripletex_start > max {
        return Err(ConfigError::new(
            path,
            Some(&format!("{section}.tripletex_start")),
            format!(
                "{} is out of range: Tripletex's numbers go up to {max}",
                range.tripletex_start
            ),
            format!("e.g. tripletex_start = {tripletex_default}"),
        ));
    }
    if range.shop_start >= range.tripletex_start {
        return Err(ConfigError::new(
            path,
            Some(&format!("{section}.shop_start")),
            format!(
                "shop_start {} is not below tripletex_start {}: the shop's numbers would run into Tripletex's",
                range.shop_start, range.tripletex_start
            ),
            format!(
                "set {section}.tripletex_start above shop_start (the seed uses {tripletex_default})"
            ),
        ));
    }
    Ok(raw.enabled.then_some(range))
}
